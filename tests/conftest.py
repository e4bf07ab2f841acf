import numpy as np
import pytest
from scipy import special


def make_multiclass(seed=0, n=3000, c=10, scale=4.0, true_t=2.5, dtype=np.float32):
    """Logits true_t * g with labels drawn from softmax(g): overconfident by true_t."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, scale, size=(n, c))
    y = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return (true_t * g).astype(dtype), y.astype(np.int64)


def make_binary(seed=0, n=3000, true_t=2.5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = rng.normal(0.5, 2.5, size=n)
    y = (rng.random(n) < special.expit(g)).astype(np.int64)
    return (true_t * g).astype(dtype), y


def make_multilabel(seed=0, n=3000, c=3, true_t=2.5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 2.5, size=(n, c))
    y = (rng.random((n, c)) < special.expit(g)).astype(np.int64)
    return (true_t * g).astype(dtype), y


@pytest.fixture
def multiclass():
    return make_multiclass()


@pytest.fixture
def binary():
    return make_binary()


@pytest.fixture
def multilabel():
    return make_multilabel()


@pytest.fixture
def tiny_cells(monkeypatch):
    """Refinement cells of 4 sub-cells, values gathered below 6 per cell: a few
    thousand values then take several refinement rounds."""
    from calibrate import refinement
    monkeypatch.setattr(refinement, "SUB_BINS", 4)
    monkeypatch.setattr(refinement, "GATHER", 6)
    monkeypatch.setattr(refinement, "GATHER_ALL", 6)
    monkeypatch.setattr(refinement, "_BITS", 2)
