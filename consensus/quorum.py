"""Quorum arithmetic for n equal-power validators, integer only.

With f = floor((n - 1) / 3) tolerated faults, a quorum (2f+1 when n = 3f+1) is the
smallest count such that any two quorums share a correct validator; f+1 guarantees one.
"""

from __future__ import annotations


def compute_max_faulty(n: int) -> int:
    """f: the most Byzantine validators n validators tolerate (n >= 3f + 1)."""
    return (n - 1) // 3 if n > 0 else 0


def compute_quorum(n: int) -> int:
    """The smallest count strictly above two thirds of n (2f+1 when n = 3f+1)."""
    return 2 * n // 3 + 1
