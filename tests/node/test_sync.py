"""Block sync decisions without sockets: step tables of (event, now, expected) for the
tracker (honest catch-up, liars that never answer, answer nothing or answer garbage,
unsolicited replies, the one-block grace, disconnects), replies bounded by bytes, and the
config check that a full block fits one frame."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import consensus as cs
from ledger.block import MAX_COMMIT_SIGNATURES, BlockHeader, Commit, CommitSig
from ledger.codec import pack
from ledger.constants import BLOCK_VERSION
from ledger.errors import CodecError
from node import messages as msg
from node.config import (
    ConfigError,
    ConsensusConfig,
    NodeConfig,
    P2PConfig,
    check_config,
    load_config,
)
from node.sync import SyncParams, SyncTracker, Verdict, select_blocks

HONEST = b"h" * 32
OTHER = b"o" * 32
LIAR = b"l" * 32
TOP = 2**63 - 1
MiB = 1024 * 1024
FRAME = 16 * MiB


# Step tables: each step is (event, now, expected result).
@dataclass(frozen=True)
class Claim:
    peer: bytes
    height: int


@dataclass(frozen=True)
class Ask:
    our_height: int  # expects (peer, start, count) or None


@dataclass(frozen=True)
class Reply:
    peer: bytes
    delivered: int
    valid: bool
    our_height: int  # expects a Verdict


@dataclass(frozen=True)
class Expire:
    pass  # expects the peers whose requests timed out


@dataclass(frozen=True)
class Forget:
    peer: bytes


@dataclass(frozen=True)
class EndGrace:
    our_height: int


Step = tuple[object, float, Any]


def apply(tracker: SyncTracker, event: object, now: float) -> Any:
    if isinstance(event, Claim):
        return tracker.on_claim(event.peer, event.height)
    if isinstance(event, Ask):
        request = tracker.next_request(event.our_height, now)
        return None if request is None else (request.peer, request.start, request.count)
    if isinstance(event, Reply):
        return tracker.on_blocks(event.peer, event.delivered, event.valid, event.our_height, now)
    if isinstance(event, Expire):
        return [request.peer for request in tracker.expire(now)]
    if isinstance(event, Forget):
        return tracker.forget(event.peer)
    if isinstance(event, EndGrace):
        return tracker.end_grace(event.our_height)
    raise TypeError(event)


def run(steps: list[Step], params: SyncParams | None = None) -> SyncTracker:
    tracker = SyncTracker(params)
    for index, (event, now, expected) in enumerate(steps):
        got = apply(tracker, event, now)
        assert got == expected, f"step {index}: {event} at {now}: got {got!r}"
    return tracker


# Deadlines with the default params: 6 s for a request of 2+ blocks, 4 s for one block.
LONG = 6.0
SHORT = 4.0


def test_basic() -> None:
    """An honest peer 110 blocks ahead: three requests, each a full or the last partial."""
    run(
        [
            (Claim(HONEST, 120), 0.0, True),
            (Ask(10), 0.0, (HONEST, 11, 50)),
            (Ask(10), 0.1, None),  # one request per peer; nobody else to ask
            (Reply(HONEST, 50, True, 60), 0.5, Verdict.DELIVERED),
            (Ask(60), 0.5, (HONEST, 61, 50)),
            (Reply(HONEST, 36, True, 96), 1.0, Verdict.DELIVERED),  # bounded by bytes
            (Ask(96), 1.0, (HONEST, 97, 24)),
            (Reply(HONEST, 24, True, 120), 1.5, Verdict.DELIVERED),
            (Ask(120), 1.5, None),
        ]
    )


def test_no_hedge_while_a_trusted_peer_is_asked() -> None:
    """Two honest peers: once one has delivered, only it is asked, never both at once."""
    run(
        [
            (Claim(HONEST, 200), 0.0, True),
            (Claim(OTHER, 150), 0.0, True),
            (Ask(10), 0.0, (HONEST, 11, 50)),
            (Ask(10), 0.0, (OTHER, 11, 50)),  # hedge: nobody has delivered yet
            (Reply(HONEST, 50, True, 60), 0.5, Verdict.DELIVERED),
            (Reply(OTHER, 0, True, 60), 0.6, Verdict.NOTHING_NEW),  # range filled: no fault
            (Ask(60), 0.6, (HONEST, 61, 50)),
            (Ask(60), 0.6, None),  # HONEST is trusted and in flight
        ]
    )


def test_liar_never_answers_is_timed_out() -> None:
    """A peer claiming 2**63-1 that never answers: with one slot it holds sync until its
    deadline, then the honest peer is asked; afterwards the liar is asked only when nobody
    else is ahead, and after 3 timeouts it is backed off and no longer counts as ahead."""
    run(
        [
            (Claim(LIAR, TOP), 0.0, True),
            (Claim(HONEST, 100), 0.0, True),
            (Ask(10), 0.0, (LIAR, 11, 50)),  # highest claim, nothing known yet
            (Ask(10), 1.0, None),  # the one slot is held
            (Expire(), LONG - 0.1, []),
            (Expire(), LONG, [LIAR]),
            (Ask(10), LONG, (HONEST, 11, 50)),  # the liar now ranks last
            (Reply(HONEST, 50, True, 60), 7.0, Verdict.DELIVERED),
            (Ask(60), 7.0, (HONEST, 61, 40)),
            (Reply(HONEST, 40, True, 100), 8.0, Verdict.DELIVERED),
            (Ask(100), 8.0, (LIAR, 101, 50)),  # only the liar claims more
            (Ask(100), 8.0 + LONG, (LIAR, 101, 50)),  # timeout 2, asked again
            (Ask(100), 8.0 + 2 * LONG, None),  # timeout 3: backed off, not behind
            (Ask(100), 8.0 + 2 * LONG + 29.9, None),
            (Ask(100), 8.0 + 2 * LONG + 30.0, (LIAR, 101, 50)),
        ],
        SyncParams(max_inflight=1),
    )


def test_liar_never_answers_does_not_stall_sync() -> None:
    """With the default hedge slot the honest peer is asked while the liar is silent."""
    run(
        [
            (Claim(LIAR, TOP), 0.0, True),
            (Claim(HONEST, 100), 0.0, True),
            (Ask(10), 0.0, (LIAR, 11, 50)),
            (Ask(10), 0.0, (HONEST, 11, 50)),  # the liar is not trusted: hedge
            (Reply(HONEST, 50, True, 60), 0.5, Verdict.DELIVERED),
            (Ask(60), 0.5, (HONEST, 61, 40)),
            (Reply(HONEST, 40, True, 100), 1.0, Verdict.DELIVERED),
            (Expire(), LONG, [LIAR]),
            (Reply(LIAR, 50, True, 100), LONG + 1, Verdict.UNSOLICITED),  # too late
        ]
    )


def test_liar_answers_nothing_or_garbage() -> None:
    """Empty and invalid replies are failures: the liar is deprioritised, then backed off
    for 30 s, then for 60 s (doubling) after its next failure."""
    run(
        [
            (Claim(LIAR, TOP), 0.0, True),
            (Claim(HONEST, 20), 0.0, True),
            (Ask(10), 0.0, (LIAR, 11, 50)),
            (Reply(LIAR, 0, True, 10), 0.1, Verdict.EMPTY),  # failure 1
            (Ask(10), 0.1, (HONEST, 11, 10)),  # the liar is tried last
            (Reply(HONEST, 10, True, 20), 0.2, Verdict.DELIVERED),
            (Ask(20), 0.2, (LIAR, 21, 50)),
            (Reply(LIAR, 0, True, 20), 0.3, Verdict.EMPTY),  # failure 2
            (Ask(20), 0.3, (LIAR, 21, 50)),
            (Reply(LIAR, 3, False, 20), 0.4, Verdict.INVALID),  # failure 3: backed off
            (Ask(20), 0.4, None),
            (Claim(LIAR, TOP), 10.0, True),  # its claims are kept but do not count
            (Ask(20), 30.3, None),
            (Ask(20), 30.4, (LIAR, 21, 50)),
            (Reply(LIAR, 0, True, 20), 30.5, Verdict.EMPTY),  # failure 4: 60 s
            (Ask(20), 90.4, None),
            (Ask(20), 90.5, (LIAR, 21, 50)),
        ]
    )


def test_delivery_clears_the_record() -> None:
    tracker = run(
        [
            (Claim(HONEST, 100), 0.0, True),
            (Ask(10), 0.0, (HONEST, 11, 50)),
            (Reply(HONEST, 0, True, 10), 0.1, Verdict.EMPTY),
            (Ask(10), 0.1, (HONEST, 11, 50)),
            (Reply(HONEST, 50, True, 60), 0.2, Verdict.DELIVERED),
        ]
    )
    record = tracker.get_record(HONEST)
    assert record is not None
    assert (record.failures, record.backoffs, record.delivered_at) == (0, 0, 0.2)


def test_empty_reply_without_claim_is_no_fault() -> None:
    """The peer claimed only what we now hold (consensus committed it meanwhile)."""
    tracker = run(
        [
            (Claim(HONEST, 11), 0.0, True),
            (EndGrace(10), 0.0, None),
            (Ask(10), 0.0, (HONEST, 11, 1)),
            (Reply(HONEST, 0, True, 11), 0.1, Verdict.NOTHING_NEW),
        ]
    )
    record = tracker.get_record(HONEST)
    assert record is not None and record.failures == 0


def test_invalid_unsolicited_reply() -> None:
    """BLOCKS nobody asked for, a second reply to one request, or a reply after the
    deadline are ignored and change nothing."""
    tracker = run(
        [
            (Reply(HONEST, 5, True, 10), 0.0, Verdict.UNSOLICITED),
            (Claim(HONEST, 100), 0.0, True),
            (Reply(HONEST, 0, False, 10), 0.0, Verdict.UNSOLICITED),
            (Ask(10), 0.0, (HONEST, 11, 50)),
            (Reply(HONEST, 50, True, 60), 0.1, Verdict.DELIVERED),
            (Reply(HONEST, 0, False, 60), 0.2, Verdict.UNSOLICITED),
            (Ask(60), 0.2, (HONEST, 61, 40)),
            (Expire(), 0.2 + LONG, [HONEST]),
            (Reply(HONEST, 40, True, 60), 0.3 + LONG, Verdict.UNSOLICITED),
        ]
    )
    assert tracker.get_awaited(HONEST) is None
    assert tracker.get_awaited(LIAR) is None


def test_one_block_ahead_grace() -> None:
    """One block ahead: wait 1.5 s; two ahead: at once; a known decision ends the wait."""
    run(
        [
            (Claim(HONEST, 11), 0.0, True),
            (Ask(10), 0.0, None),
            (Ask(10), 1.4, None),
            (Ask(10), 1.5, (HONEST, 11, 1)),
            (Reply(HONEST, 1, True, 11), 1.6, Verdict.DELIVERED),
            (Claim(HONEST, 12), 1.7, True),
            (Ask(11), 1.7, None),  # the wait restarts at the new height
            (Claim(HONEST, 13), 2.0, True),
            (Ask(11), 2.0, (HONEST, 12, 2)),
            (Reply(HONEST, 2, True, 13), 2.1, Verdict.DELIVERED),
            (Claim(HONEST, 14), 2.2, True),
            (EndGrace(13), 2.2, None),
            (Ask(13), 2.2, (HONEST, 14, 1)),
        ]
    )


def test_disconnect_forgets() -> None:
    """A disconnect drops the claim and the request; a backed-off peer that reconnects is
    still backed off."""
    run(
        [
            (Claim(HONEST, 100), 0.0, True),
            (Ask(10), 0.0, (HONEST, 11, 50)),
            (Forget(HONEST), 0.1, None),
            (Reply(HONEST, 50, True, 60), 0.2, Verdict.UNSOLICITED),
            (Ask(10), 0.2, None),  # its claim no longer counts
            (Claim(LIAR, TOP), 1.0, True),
            (Ask(10), 1.0, (LIAR, 11, 50)),
            (Reply(LIAR, 0, True, 10), 1.1, Verdict.EMPTY),
            (Ask(10), 1.1, (LIAR, 11, 50)),
            (Reply(LIAR, 0, True, 10), 1.2, Verdict.EMPTY),
            (Ask(10), 1.2, (LIAR, 11, 50)),
            (Forget(LIAR), 1.3, None),  # the request is dropped, no failure counted
            (Claim(LIAR, TOP), 1.4, True),
            (Ask(10), 1.4, (LIAR, 11, 50)),
            (Reply(LIAR, 0, True, 10), 1.5, Verdict.EMPTY),  # failure 3: backed off
            (Forget(LIAR), 1.6, None),
            (Claim(LIAR, TOP), 1.7, True),
            (Ask(10), 1.7, None),
            (Ask(10), 31.5, (LIAR, 11, 50)),
        ]
    )


def test_deadline_allows_for_size() -> None:
    tracker = SyncTracker()
    tracker.on_claim(HONEST, 11)
    tracker.on_claim(OTHER, 100)
    tracker.end_grace(10)
    first = tracker.next_request(10, 0.0)
    assert first is not None and (first.peer, first.count, first.deadline) == (OTHER, 50, LONG)
    tracker.forget(OTHER)
    second = tracker.next_request(10, 0.0)
    assert second is not None and (second.peer, second.count, second.deadline) == (
        HONEST,
        1,
        SHORT,
    )


def test_peer_records_are_bounded() -> None:
    """A flood of peers: records stop at max_peers; a disconnected peer's record of
    failures gives way to a new peer, a connected peer's record never does."""
    tracker = SyncTracker(SyncParams(max_peers=8))
    peers = [bytes([i]) * 32 for i in range(20)]
    accepted = [tracker.on_claim(p, 100 + i) for i, p in enumerate(peers)]
    assert accepted == [True] * 8 + [False] * 12
    assert tracker.get_target(0.0) == 107
    request = tracker.next_request(10, 0.0)
    assert request is not None and request.peer == peers[7]
    tracker.on_blocks(peers[7], 0, False, 10, 0.1)
    tracker.forget(peers[7])  # disconnected, its failure kept on record
    assert tracker.get_record(peers[7]) is not None
    assert tracker.on_claim(peers[8], 108)  # evicts that record
    assert tracker.get_record(peers[7]) is None
    assert not tracker.on_claim(peers[9], 109)


def test_next_request_releases_expired() -> None:
    """Even if the engine never calls expire, a silent peer's slot comes back."""
    run(
        [
            (Claim(LIAR, TOP), 0.0, True),
            (Ask(10), 0.0, (LIAR, 11, 50)),
            (Ask(10), LONG, (LIAR, 11, 50)),
        ],
        SyncParams(max_inflight=1),
    )


# select_blocks: replies bounded by bytes.
def blocks(sizes: list[int], commit: int = 500) -> list[tuple[bytes, bytes]]:
    return [(bytes([i % 256]) * size, b"c" * commit) for i, size in enumerate(sizes)]


def body_size(reply: list[list[bytes]]) -> int:
    return len(pack([msg.BLOCKS, reply]))


def test_select_blocks_busy_stretch() -> None:
    """50 blocks of 2,500 txs (460 KB each) are 23 MB: the reply takes as many as fit."""
    pairs = blocks([460_000] * 50)
    reply = select_blocks(iter(pairs), 50, FRAME)
    assert 1 < len(reply) < 50
    assert body_size(reply) <= FRAME
    assert body_size([*reply, list(pairs[len(reply)])]) > FRAME  # none more would fit


def test_select_blocks_first_block_always() -> None:
    """A block larger than the budget alone still goes (alone): it is the only way on."""
    pairs = blocks([FRAME, 1_000, 1_000])
    reply = select_blocks(iter(pairs), 50, FRAME)
    assert reply == [list(pairs[0])]


def test_select_blocks_limit_and_lazy() -> None:
    pulled: list[int] = []

    def source() -> Any:
        for index, pair in enumerate(blocks([1_000] * 100)):
            pulled.append(index)
            yield pair

    assert len(select_blocks(source(), 5, FRAME)) == 5
    assert pulled == [0, 1, 2, 3, 4]
    assert select_blocks(iter([]), 50, FRAME) == []
    pulled.clear()
    reply = select_blocks(source(), 50, 3_000)
    assert len(reply) == 1 and pulled == [0, 1]  # one pair read past the reply


def test_select_blocks_never_exceeds_budget() -> None:
    for size in (1, 100, 200, 255, 256, 65_535, 65_536, 300_000):
        for frame in (4_096, 100_000, 1_000_000):
            reply = select_blocks(iter(blocks([size] * 50, commit=size)), 50, frame)
            assert len(reply) >= 1
            assert len(reply) == 1 or body_size(reply) <= frame


def test_parse_blocks_bounded_by_request() -> None:
    payload = [[b"b", b"c"]] * 3
    assert len(msg.parse_blocks(payload, 3)) == 3
    with pytest.raises(CodecError):
        msg.parse_blocks(payload, 2)
    with pytest.raises(CodecError):
        msg.parse_blocks([[b"b", b"c"]] * (msg.MAX_SYNC_BLOCKS + 1), 1_000)


# The frame bounds behind the config check hold for the largest real encodings.
def test_bounds_hold_for_largest_encodings() -> None:
    hashes = dict.fromkeys(
        ("prev_hash", "tx_root", "state_hash", "validator_set_hash", "last_commit_hash"),
        b"h" * 32,
    )
    header = BlockHeader(
        version=BLOCK_VERSION,
        chain_id="c" * 64,
        height=TOP,
        time_ms=TOP,
        proposer="x" * 16,
        **hashes,
    )
    assert len(header.encode()) <= msg.MAX_HEADER_BYTES
    sigs = tuple(CommitSig(bytes(32), bytes(64)) for _ in range(MAX_COMMIT_SIGNATURES))
    commit = Commit(height=TOP, round=2**32 - 1, block_hash=bytes(32), signatures=sigs)
    assert len(commit.encode()) <= msg.MAX_COMMIT_BYTES
    proposal = cs.Proposal(TOP, 2**32 - 1, bytes(32), 2**32 - 1, bytes(32), bytes(64))
    big = b"x" * 70_000  # bin32 headers
    around_proposal = len(pack([0xFFFF, [proposal.encode(), big, big]])) - 2 * len(big)
    assert around_proposal <= msg.FRAME_SLACK_BYTES
    around_item = len(pack([0xFFFF, [[big, big]] * 2])) - 4 * len(big)
    assert around_item <= msg.ENVELOPE_BYTES + 2 * msg.ITEM_OVERHEAD_BYTES
    txs = [b"t" * 70_000] * 3
    block = pack([header.to_obj(), txs])
    assert len(block) <= msg.compute_block_bytes_bound(3 * 70_000, 3)


# The config check: a full block with its commit must fit one frame.
def config(**consensus: int) -> NodeConfig:
    return NodeConfig(
        name="n", bank="aclb", path=Path("/n.toml"), consensus=ConsensusConfig(**consensus)
    )


def test_config_default_fits() -> None:
    check_config(config())
    assert msg.compute_block_frame_bytes(8 * MiB, 5000) < FRAME


def test_invalid_config_block_larger_than_frame() -> None:
    with pytest.raises(ConfigError, match=r"max_block_bytes.*p2p\.max_frame_bytes"):
        check_config(config(max_block_bytes=16 * MiB))
    small_frame = replace(config(), p2p=P2PConfig(max_frame_bytes=4 * MiB))
    with pytest.raises(ConfigError, match="max_block_bytes"):
        check_config(small_frame)
    largest = FRAME - msg.compute_block_frame_bytes(0, 5000)
    check_config(config(max_block_bytes=largest))
    with pytest.raises(ConfigError):
        check_config(config(max_block_bytes=largest + 1))


def test_load_config_runs_the_check(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('name = "n"\nbank = "aclb"\n')
    assert load_config(path).consensus.max_block_bytes == 8 * MiB
    path.write_text('name = "n"\nbank = "aclb"\n[consensus]\nmax_block_bytes = 20000000\n')
    with pytest.raises(ConfigError, match="max_block_bytes"):
        load_config(path)
    path.write_text('name = "n"\nbank = "aclb"\n[p2p]\nmax_frame_bytes = 1000000\n')
    with pytest.raises(ConfigError, match="max_frame_bytes"):
        load_config(path)
