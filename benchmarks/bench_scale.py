"""Fit and apply on .npy files, from disk: multiclass 50k, 200k and 1M rows x
1000 classes; binary 5M logits; multilabel 100k x 100 and 200k x 1000 (float32
logits, int8 multilabel labels, both read from their files).

Each measurement runs in a fresh Python process reading the files from disk
(row chunks, never the whole array; the modules are imported before the clock
starts, as scikit-learn's are), and reports wall time, peak resident
memory (VmHWM of that process) and the passes made over the scores.  In the
same run, scikit-learn's temperature scaling alone on the same scores (for
multilabel: the pooled (row, label) pairs as one binary problem; loaded whole,
as it needs them) for the smaller cases.  The files are made once in a
scratch folder (default: a temporary folder; 1M x 1000 is 4 GB) and removed at
the end unless --keep is given.

    python benchmarks/bench_scale.py [--rows 50000,200000,1000000]
        [--binary 5000000] [--multilabel 100000x100,200000x1000]
        [--tasks multiclass,binary,multilabel] [--dir DIR] [--keep]

Goals: multiclass 1M x 1000 fitted in under 20 s with peak RSS under 1.5 GB
on a 2-core machine, time growing linearly with rows; binary and multilabel
fits at most 1/5 of scikit-learn's temperature scaling, multilabel 1M x 1000
in under 2 minutes under 1.5 GB.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from machine import speed_line

CHILD = r"""
import json, resource, sys, time
import numpy as np
import calibrate
from calibrate import fitting, kernels, sigmoid_passes  # noqa: F401  (untimed imports)
from calibrate.backends import local
chunks = []
def hook(label, n_chunks):
    chunks.append(n_chunks)
    return None
scores, labels, out, what = sys.argv[1:5]
t0 = time.perf_counter()
if what == "fit":
    # labels from their file: multilabel ones stay there and are read in row chunks
    cal = calibrate.fit(scores, labels, precision=0.9, confidence=0.95, progress=hook)
    cal.save(out)
    extra = {"T": float(np.mean(cal.temperature)),
             "temperature_passes": cal.summary["temperature"]["passes"]}
else:
    from calibrate import io
    cal = calibrate.load(out)
    src, _ = io.read_scores(scores)
    shape, dtype = cal.decisions_shape(src.shape[0])
    io.write_predictions(out + ".npy", cal.iter_predict(src, progress=hook), cal.classes,
                         shape=shape, dtype=dtype)
    extra = {}
wall = time.perf_counter() - t0
# VmHWM: this process's own peak (ru_maxrss would include the parent's, from before exec)
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
n, c = np.load(labels, mmap_mode="r").shape[0], cal.n_scored
per_pass = len(local.row_slices(n, local.chunk_rows(c)))
print(json.dumps({"wall": wall, "rss_mb": rss, "passes": sum(chunks) / per_pass, **extra}))
"""


SKLEARN = r"""
import json, sys, time
import numpy as np
from sklearn.calibration import _TemperatureScaling
z, y = np.load(sys.argv[1]), np.load(sys.argv[2])
one = z.ndim == 1 or y.ndim == 2   # binary, or multilabel pooled: one logit column
if one:
    z, y = z.reshape(-1, 1), y.reshape(-1)
t0 = time.perf_counter()
m = _TemperatureScaling().fit(z, y)
# scikit-learn reads one column d as the two logits (-d, d): its T is twice ours
t = (0.5 if one else 1.0) / float(m.beta_)
print(json.dumps({"wall": time.perf_counter() - t0, "T": t}))
"""


def make_file(path, n, c, seed=0, block=50_000):
    """Overconfident float32 logits written block by block (flat memory)."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, c))
    labels = np.empty(n, np.int64)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        g = rng.standard_normal((hi - lo, c), dtype=np.float32) * 2.0
        y = rng.integers(0, c, hi - lo)
        g[np.arange(hi - lo), y] += 5.0
        # labels from the model's own softmax at T=1, logits reported 2x: T ~ 2
        p = np.exp(g - g.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        labels[lo:hi] = (p.cumsum(1) > rng.random((hi - lo, 1))).argmax(1)
        out[lo:hi] = 2.0 * g
    out.flush()
    del out
    return labels


def make_binary(path, n, seed=0):
    """Overconfident binary logits (twice the model's own), labels drawn from it."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0.3, 2.0, n).astype(np.float32)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-g))).astype(np.int8)
    np.save(path, 2.0 * g)
    return y


def make_multilabel(path, labels_path, n, c, seed=0, block=20_000):
    """Overconfident multilabel logits and int8 labels, written block by block."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, c))
    lab = np.lib.format.open_memmap(labels_path, mode="w+", dtype=np.int8, shape=(n, c))
    shift = rng.normal(-1.0, 1.0, c).astype(np.float32)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        g = rng.standard_normal((hi - lo, c), dtype=np.float32) * 2.0 + shift
        lab[lo:hi] = rng.random((hi - lo, c), dtype=np.float32) < 1.0 / (1.0 + np.exp(-g))
        out[lo:hi] = 2.0 * g
    out.flush()
    lab.flush()


def run(args, code=CHILD):
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="50000,200000,1000000")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--binary", default="5000000", help="binary rows, comma-separated")
    ap.add_argument("--multilabel", default="100000x100,200000x1000",
                    help="multilabel rows x labels, comma-separated")
    ap.add_argument("--tasks", default="multiclass,binary,multilabel")
    ap.add_argument("--sklearn-max", type=int, default=50_000_000,
                    help="compare with scikit-learn up to this many scores")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    folder = a.dir or tempfile.mkdtemp(prefix="calibrate-bench-")
    os.makedirs(folder, exist_ok=True)
    rows = [int(r) for r in a.rows.split(",")]
    print(speed_line("before"))
    print(f"{'task':<11}{'rows x classes':<19}{'file GB':>8}{'step':>6}{'wall s':>9}"
          f"{'peak RSS MB':>13}{'passes':>8}{'s/Mrow':>8}{'T':>10}")
    cases = []
    tasks = a.tasks.split(",")
    if "multiclass" in tasks:
        cases += [("multiclass", n, a.classes) for n in rows if n]
    if "binary" in tasks:
        cases += [("binary", int(n), 1) for n in a.binary.split(",") if n]
    if "multilabel" in tasks:
        cases += [("multilabel",) + tuple(int(v) for v in m.split("x"))
                  for m in a.multilabel.split(",") if m]
    try:
        for task, n, c in cases:
            z = os.path.join(folder, f"{task}_logits_{n}x{c}.npy")
            y = os.path.join(folder, f"{task}_labels_{n}x{c}.npy")
            if not (os.path.exists(z) and os.path.exists(y)):
                if task == "multiclass":
                    np.save(y, make_file(z, n, c))
                elif task == "binary":
                    np.save(y, make_binary(z, n))
                else:
                    make_multilabel(z, y, n, c)
            gb = os.path.getsize(z) / 1e9
            out = os.path.join(folder, f"thresholds_{task}_{n}x{c}.json")
            fit = run([z, y, out, "fit"])
            app = run([z, y, out, "apply"])
            shape = f"{n} x {c}" if task != "binary" else f"{n}"
            for step, r in (("fit", fit), ("apply", app)):
                t = f"{r['T']:.5f}" if "T" in r else ""
                print(f"{task:<11}{shape:<19}{gb:>8.2f}{step:>6}{r['wall']:>9.2f}"
                      f"{r['rss_mb']:>13.0f}{r['passes']:>8.1f}{r['wall'] / n * 1e6:>8.2f}{t:>10}")
            if n * c <= a.sklearn_max:
                try:
                    sk = run([z, y], SKLEARN)
                    print(f"{'':<30}{'sklearn T only':>14}{sk['wall']:>9.2f}"
                          f"{'':>13}{'':>8}{'':>8}{sk['T']:>10.5f}"
                          f"   (calibrate.fit / sklearn = {fit['wall'] / sk['wall']:.3f})")
                except SystemExit:
                    print("scikit-learn not installed: no comparison")
            sys.stdout.flush()
        print(speed_line("after"))
    finally:
        if not a.keep and a.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
