"""Fit and apply on .npy files of 50k, 200k and 1M rows x 1000 classes (float32).

Each measurement runs in a fresh Python process reading the file from disk
(row chunks, never the whole array), and reports wall time, peak resident
memory (ru_maxrss of that process) and the passes made over the scores.
The files are made once in a scratch folder (default: a temporary folder;
1M x 1000 is 4 GB) and removed at the end unless --keep is given.

    python benchmarks/bench_scale.py [--rows 50000,200000,1000000] [--dir DIR] [--keep]

Goals: 1M x 1000 fitted in under 20 s with peak RSS under 1.5 GB on a
2-core machine, time growing linearly with rows.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
import calibrate
from calibrate.backends import local
chunks = []
def hook(label, n_chunks):
    chunks.append(n_chunks)
    return None
scores, labels, out, what = sys.argv[1:5]
t0 = time.perf_counter()
if what == "fit":
    cal = calibrate.fit(scores, np.load(labels), precision=0.9, confidence=0.95, progress=hook)
    cal.save(out)
    extra = {"T": cal.temperature, "temperature_passes": cal.summary["temperature"]["passes"]}
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
t0 = time.perf_counter()
m = _TemperatureScaling().fit(z, y)
print(json.dumps({"wall": time.perf_counter() - t0, "T": 1.0 / float(m.beta_)}))
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


def run(args, code=CHILD):
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="50000,200000,1000000")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    folder = a.dir or tempfile.mkdtemp(prefix="calibrate-bench-")
    os.makedirs(folder, exist_ok=True)
    rows = [int(r) for r in a.rows.split(",")]
    print(f"{'rows x classes':<18}{'file GB':>8}{'step':>6}{'wall s':>9}{'peak RSS MB':>13}"
          f"{'passes':>8}{'s/Mrow':>8}{'T':>10}")
    try:
        for n in rows:
            z = os.path.join(folder, f"logits_{n}.npy")
            y = os.path.join(folder, f"labels_{n}.npy")
            if not (os.path.exists(z) and os.path.exists(y)):
                np.save(y, make_file(z, n, a.classes))
            gb = os.path.getsize(z) / 1e9
            out = os.path.join(folder, f"thresholds_{n}.json")
            fit = run([z, y, out, "fit"])
            app = run([z, y, out, "apply"])
            for step, r in (("fit", fit), ("apply", app)):
                t = f"{r['T']:.5f}" if "T" in r else ""
                print(f"{n:>9} x {a.classes:<6}{gb:>8.2f}{step:>6}{r['wall']:>9.2f}"
                      f"{r['rss_mb']:>13.0f}{r['passes']:>8.1f}{r['wall'] / n * 1e6:>8.2f}{t:>10}")
            if n <= 50_000:
                try:
                    sk = run([z, y], SKLEARN)
                    print(f"{'':>18}{'':>8}{'sklearn T only':>15}{sk['wall']:>9.2f}"
                          f"{'':>13}{'':>8}{'':>8}{sk['T']:>10.5f}"
                          f"   (calibrate.fit / sklearn = {fit['wall'] / sk['wall']:.3f})")
                except SystemExit:
                    print("scikit-learn not installed: no comparison")
            sys.stdout.flush()
    finally:
        if not a.keep and a.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
