"""Regenerate the picture of the README's "Calibration report" section.

    python docs/make_figures.py

Fits on ``sample_data/val_*`` (10 classes, overconfident by 2.5), evaluates the
threshold file on ``sample_data/test_*`` and writes ``docs/calibration_report.png``
(what ``calibrate evaluate ... --plot`` draws), and prints the two command outputs
the README shows beside it (tests/test_readme.py checks those against the real
commands).  Needs the ``plot`` extra.  Everything is seeded by the
sample data, so the picture changes only when the toolkit's output does.
"""

from pathlib import Path

import numpy as np

import calibrate
from calibrate import plots
from calibrate_cli.evaluate import format_evaluation
from calibrate_cli.main import format_summary

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
OUT = ROOT / "docs"


def main():
    names = (SAMPLE / "classes.txt").read_text().split()
    z, y = np.load(SAMPLE / "val_logits.npy"), np.load(SAMPLE / "val_labels.npy")
    zt, yt = np.load(SAMPLE / "test_logits.npy"), np.load(SAMPLE / "test_labels.npy")
    cal = calibrate.fit(z, y, precision=0.9, confidence=0.95, classes=names)
    print("$ calibrate fit sample_data/val_logits.npy --labels sample_data/val_labels.npy "
          "--classes sample_data/classes.txt -o thresholds.json")
    print(format_summary(cal))
    print("wrote thresholds.json\n")
    res = calibrate.evaluate(cal, zt, yt)
    print("$ calibrate evaluate thresholds.json sample_data/test_logits.npy "
          "--labels sample_data/test_labels.npy --plot docs/calibration_report.png")
    print(format_evaluation(res, "thresholds.json"))
    path = OUT / "calibration_report.png"
    plots.save_report(cal, zt, yt, path, title="thresholds.json on sample_data/test_logits.npy",
                      held_out=False, dpi=100)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
