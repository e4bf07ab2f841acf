"""Make the small seeded data sets in sample_data/ (run from anywhere).

Each set is drawn from a known model, then made overconfident: labels come
from the "true" logits g, and the saved logits are TRUE_T * g, so a correct
temperature fit finds T close to TRUE_T.

* multiclass: 10 classes, logits (N, 10) float32, labels (N,) int64
* binary: one logit per row (N,) float32, labels 0/1
* multilabel: 3 classes of independent sigmoid logits (N, 3), labels 0/1 (N, 3)

Validation (``val_*``) and test (``test_*``) halves come from the same model.
"""

from pathlib import Path

import numpy as np
from scipy import special

SEED = 20261124
TRUE_T = 2.5
HERE = Path(__file__).resolve().parent


def multiclass(rng, n, c=10):
    g = rng.normal(0.0, 4.0, size=(n, c))
    g += rng.normal(0.0, 0.5, size=c)  # classes differ in how often they win
    p = special.softmax(g, axis=1)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return (TRUE_T * g).astype(np.float32), y.astype(np.int64)


def binary(rng, n):
    g = rng.normal(0.5, 2.5, size=n)
    y = (rng.random(n) < special.expit(g)).astype(np.int64)
    return (TRUE_T * g).astype(np.float32), y


def multilabel(rng, n, c=3):
    g = rng.normal([-1.0, 0.0, 1.0], 2.5, size=(n, c))
    y = (rng.random((n, c)) < special.expit(g)).astype(np.int64)
    return (TRUE_T * g).astype(np.float32), y


def main():
    rng = np.random.default_rng(SEED)
    for split, n in (("val", 4000), ("test", 2000)):
        z, y = multiclass(rng, n)
        np.save(HERE / f"{split}_logits.npy", z)
        np.save(HERE / f"{split}_labels.npy", y)
        z, y = binary(rng, n)
        np.savez(HERE / f"binary_{split}.npz", logits=z, labels=y)
        z, y = multilabel(rng, n)
        np.savez(HERE / f"multilabel_{split}.npz", logits=z, labels=y)
    (HERE / "classes.txt").write_text(
        "\n".join(["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]) + "\n")


if __name__ == "__main__":
    main()
