"""Quorum arithmetic against a deliberately naive counter (raft's quick_test habit)."""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.quorum import compute_max_faulty, compute_quorum


def naive_max_faulty(n: int) -> int:
    """The largest f with n >= 3f + 1, by counting up."""
    f = 0
    while 3 * (f + 1) + 1 <= n:
        f += 1
    return f


def naive_quorum(n: int) -> int:
    """The smallest count that is more than two thirds of n, by counting up."""
    return next(k for k in range(n + 1) if Fraction(k, n) > Fraction(2, 3))


def naive_intersect(n: int, k: int) -> int:
    """The smallest overlap of two k-subsets of range(n), by enumeration."""
    members = range(n)
    first = set(range(k))
    return min(len(first & set(other)) for other in combinations(members, k))


def test_basic() -> None:
    assert [compute_quorum(n) for n in (1, 4, 7, 10, 16)] == [1, 3, 5, 7, 11]
    assert [compute_max_faulty(n) for n in (1, 4, 7, 10, 16)] == [0, 1, 2, 3, 5]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_quorum_matches_naive_counter(n: int) -> None:
    assert compute_max_faulty(n) == naive_max_faulty(n)
    assert compute_quorum(n) == naive_quorum(n)
    # the correct validators alone reach a quorum (liveness)
    assert n - compute_max_faulty(n) >= compute_quorum(n)


def test_two_quorums_share_a_correct_validator() -> None:
    for n in range(1, 11):
        assert naive_intersect(n, compute_quorum(n)) >= compute_max_faulty(n) + 1
