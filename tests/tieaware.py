"""Tie-aware comparisons between fast float32 code and float64 brute-force references.

Two candidates whose reference values agree to a relative 1e-6 may be ordered either way by code that
works in float32 (or sums in another order); such a swap is not a bug. Everything else must match exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REL = 1e-6


def close(a: float, b: float, rel: float = REL, atol: float = 0.0) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + atol


def assert_argmin_equivalent(got: int, ref_values: Sequence[float], rel: float = REL, atol: float = 0.0) -> None:
    """`got` is an argmin of `ref_values`, up to a near-tie with the true minimum."""
    v = np.asarray(ref_values, dtype=np.float64)
    best = float(v.min())
    assert close(float(v[got]), best, rel, atol), \
        f"index {got} has {v[got]!r}, the minimum is {best!r} at {int(v.argmin())}"


def assert_ranking_equivalent(got: Sequence[int], want: Sequence[int], ref_values: Sequence[float] | np.ndarray,
                              rel: float = REL, atol: float = 0.0) -> None:
    """Two rankings agree rank by rank, or their reference values at each differing rank agree to `rel`.

    `ref_values[j]` is candidate j's value under the float64 reference (e.g. its distance to the query).
    """
    got, want = list(got), list(want)
    assert len(got) == len(want), (got, want)
    assert len(set(got)) == len(got), f"repeated candidates in {got}"
    v = np.asarray(ref_values, dtype=np.float64)
    for r, (g, w) in enumerate(zip(got, want)):
        if g != w:
            assert close(float(v[g]), float(v[w]), rel, atol), (
                f"rank {r}: got {g} ({v[g]!r}), the reference has {w} ({v[w]!r})")
