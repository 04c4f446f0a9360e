"""How fast this machine runs Python, printed beside every benchmark table.

The issue targets are absolute seconds, and the machines these benchmarks run on differ
(one run here was three times slower than another with the same code). A fixed piece of
pure Python, timed the same way every time, says which kind of machine a table came from.
"""

from __future__ import annotations

import time


def reference_seconds() -> float:
    """Best of three timings of 10**7 integer additions in a Python loop."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def describe() -> str:
    """One line for a benchmark's header."""
    return (f"machine reference: 10**7 additions in a Python loop took "
            f"{reference_seconds():.2f} s (best of 3)")
