"""How fast the machine is right now: a fixed numpy loop, timed.

A shared machine's speed changes from minute to minute.  The benchmarks print
this loop's time before and after their tables, so that a slow hour can be told
from a slow program.  (On the 2-core machine of the README's tables it took
3.7 s in fast hours and 4.4 to 5.5 s in slow ones.)
"""

import time

import numpy as np


def reference_seconds() -> float:
    """Seconds for 300 rounds of exp and sin over 2^20 float64 values."""
    a = np.random.default_rng(0).standard_normal(1 << 20)
    t0 = time.perf_counter()
    for _ in range(300):
        np.exp(a, out=a)
        np.sin(a, out=a)
    return time.perf_counter() - t0


def speed_line(when: str) -> str:
    return f"machine speed {when}: a fixed numpy loop took {reference_seconds():.2f} s"
