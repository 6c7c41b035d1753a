"""The per-peer send queue: bounded, never blocking, reliable frames first; and the
reconnect backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.p2p.counters import P2PCounters
from node.p2p.params import P2PParams, compute_backoff
from node.p2p.sendqueue import MAX_PROMOTED_BYTES, SendQueue, SendQueueOverflow


def queue(max_frames: int = 3, max_bytes: int = 1000) -> tuple[SendQueue, P2PCounters]:
    counters = P2PCounters()
    return SendQueue(max_frames, max_bytes, counters), counters


def test_basic() -> None:
    q, counters = queue()
    assert q.put(b"g1", droppable=True)
    assert q.put(b"v1", droppable=False)
    assert q.put(b"g2", droppable=True)
    assert len(q) == 3 and q.queued_bytes == 6
    # Reliable frames go first; each class keeps its order.
    assert q.take_batch(1000) == [b"v1", b"g1", b"g2"]
    assert len(q) == 0 and q.queued_bytes == 0
    assert not counters.dropped


def test_a_frame_behind_droppable_goes_after_the_gossip_queued_before_it() -> None:
    """A compact proposal names txs that gossip carries: it must not overtake that
    gossip, which then can no longer be dropped; later gossip still waits its turn."""
    q, counters = queue(12)
    q.put(b"v1", droppable=False)
    q.put(b"g1", droppable=True)
    q.put(b"g2", droppable=True)
    assert q.put(b"proposal", droppable=False, behind_droppable=True)
    q.put(b"g3", droppable=True)
    q.put(b"v2", droppable=False)
    assert len(q) == 6 and q.queued_bytes == 2 + 2 + 2 + 8 + 2 + 2
    # g1 and g2 are reliable now: filling the queue drops the later g3, never them
    filler = [b"x%d" % i for i in range(7)]
    for frame in filler:
        q.put(frame, droppable=False)
    assert counters.dropped["queue_full"] == 1
    assert q.take_batch(1000) == [b"v1", b"g1", b"g2", b"proposal", b"v2", *filler]
    assert len(q) == 0 and q.queued_bytes == 0


def test_a_frame_behind_droppable_in_a_queue_over_a_quarter_full_goes_first() -> None:
    """A peer that far behind asks for the block anyway: its gossip stays droppable."""
    q, _ = queue(10)
    for frame in (b"g1", b"g2", b"g3"):
        q.put(frame, droppable=True)
    q.put(b"proposal", droppable=False, behind_droppable=True)
    assert q.take_batch(1000) == [b"proposal", b"g1", b"g2", b"g3"]


def test_no_more_than_max_promoted_bytes_of_gossip_go_ahead_of_a_proposal() -> None:
    """Votes queued after the proposal wait for the gossip put ahead of it, so that is
    bounded in bytes as well as by the quarter of the queue."""
    q, _ = queue(1000, 1 << 30)
    big = b"g" * (MAX_PROMOTED_BYTES // 2 + 1)
    q.put(big, droppable=True)
    q.put(big, droppable=True)
    q.put(b"proposal", droppable=False, behind_droppable=True)
    assert q.take_batch(1 << 30) == [b"proposal", big, big]
    q.put(big, droppable=True)
    q.put(b"proposal", droppable=False, behind_droppable=True)
    assert q.take_batch(1 << 30) == [big, b"proposal"]


def test_take_batch_stops_near_max_bytes() -> None:
    q, _ = queue(10)
    for frame in (b"a" * 10, b"b" * 10, b"c" * 10):
        q.put(frame, droppable=False)
    assert q.take_batch(15) == [b"a" * 10, b"b" * 10]
    assert q.take_batch(1) == [b"c" * 10]


def test_invalid_full_evicts_oldest_droppable() -> None:
    q, counters = queue()
    q.put(b"g1", droppable=True)
    q.put(b"v1", droppable=False)
    q.put(b"g2", droppable=True)
    assert q.put(b"v2", droppable=False)
    assert q.put(b"g3", droppable=True)
    assert q.take_batch(1000) == [b"v1", b"v2", b"g3"]
    assert counters.dropped["queue_full"] == 2


def test_invalid_full_of_reliable_drops_new_droppable() -> None:
    q, counters = queue()
    for i in range(3):
        q.put(b"v%d" % i, droppable=False)
    assert not q.put(b"g", droppable=True)
    assert counters.dropped["queue_full"] == 1
    assert len(q) == 3


def test_invalid_full_of_reliable_overflows() -> None:
    q, _ = queue()
    for i in range(3):
        q.put(b"v%d" % i, droppable=False)
    with pytest.raises(SendQueueOverflow) as err:
        q.put(b"v3", droppable=False)
    assert err.value.code == "slow_peer"
    assert len(q) == 3


def test_invalid_byte_bound() -> None:
    q, counters = queue(max_frames=100, max_bytes=10)
    q.put(b"x" * 6, droppable=True)
    assert q.put(b"y" * 6, droppable=True)
    assert q.queued_bytes == 6 and counters.dropped["queue_full"] == 1
    assert q.take_batch(100) == [b"y" * 6]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "take"]), st.integers(1, 50), st.booleans())))
def test_bounds_hold_under_any_sequence(ops: list[tuple[str, int, bool]]) -> None:
    q, _ = queue(max_frames=5, max_bytes=120)
    for op, size, droppable in ops:
        if op == "take":
            before = len(q)
            batch = q.take_batch(size)
            assert (before == 0) == (batch == []) and len(q) == before - len(batch)
            continue
        try:
            q.put(b"f" * size, droppable)
        except SendQueueOverflow:
            assert not droppable
        assert len(q) <= 5 and q.queued_bytes <= 120
    assert q.queued_bytes == sum(map(len, q.take_batch(10_000)))
    assert len(q) == 0


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    params = P2PParams(reconnect_min=0.1, reconnect_max=2.0)
    rng = random.Random(7)
    for attempt, nominal in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (1000, 2.0)]:
        delays = {compute_backoff(attempt, params, rng) for _ in range(20)}
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(delays) > 1
    again = random.Random(7)
    assert compute_backoff(0, params, again) == compute_backoff(0, params, random.Random(7))
