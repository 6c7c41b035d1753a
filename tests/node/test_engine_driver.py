"""The engine as a driver: every action of a step runs to the end before the next event,
the next height's messages are checked and bounded before they are kept and come back
as events of their own, one block per round is executed, evidence is recorded once per
step and pruned, and a failure of the engine's own store stops it loudly.

In process on a MemoryStore, as an observer (see tests/node/test_engine.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import consensus as cs
from ledger.block import Block
from ledger.commands import Transfer
from ledger.errors import CodecError, StoreError
from ledger.store.memory import MemoryStore
from node import messages as msg
from node.engine import Engine, EngineFailure, PeerMessage
from node.evidence import EvidencePool
from node.inbox import FutureInbox
from tests.ledger.helpers import CHAIN_ID, make_node_key, make_tx
from tests.node.test_engine import (
    PEER,
    build,
    full_message,
    make_engine,
    pay,
    propose,
    proposer_name,
    run,
)


def precommits(engine: Engine, block: Block, round_: int = 0) -> list[PeerMessage]:
    return [
        PeerMessage(
            PEER,
            msg.VOTE,
            cs.sign_vote(
                make_node_key(v.name),
                CHAIN_ID,
                cs.VoteType.PRECOMMIT,
                block.height,
                round_,
                block.hash,
            ).encode(),
        )
        for v in engine.get_validators(block.height).validators
    ]


def decide(engine: Engine, block: Block) -> None:
    name = block.header.proposer
    engine._handle(full_message(propose(block, make_node_key(name)), block))
    for vote in precommits(engine, block):
        engine._handle(vote)


def queued(engine: Engine) -> list[Any]:
    events = []
    while not engine.queue.empty():
        events.append(engine.queue.get_nowait())
    return events


def next_height_proposal(engine: Engine, raw_block: bytes, round_: int = 0) -> PeerMessage:
    """A proposal for the height after the current one, signed by its real proposer."""
    height = engine.height + 2
    proposer = engine.get_validators(height).get_proposer(height, round_)
    proposal = cs.sign_proposal(
        make_node_key(proposer.name), CHAIN_ID, height, round_, b"\x42" * 32, -1
    )
    return PeerMessage(PEER, msg.PROPOSAL, [proposal.encode(), raw_block, b""])


def test_junk_for_the_next_height_cannot_stop_the_new_height() -> None:
    """The old halt: a signed PROPOSAL for h+1 carrying block bytes b"junk", replayed
    inside the Decide action, raised and skipped the new height's timeout. Now it is
    handed back as an event of its own after every action of the step ran."""

    def scenario() -> None:
        engine, _ = make_engine()
        engine._handle(next_height_proposal(engine, b"junk"))
        assert len(engine.future) == 1
        engine.mempool.add(pay(1), pay(1).encode(), engine.clock_ms())  # not idle after
        block = build(engine, [pay(0)], proposer_name(engine))
        decide(engine, block)
        assert engine.height == 1
        assert engine.state is not None and engine.state.height == 2
        # The new height's propose timeout was scheduled by the same step.
        assert engine._timers, "no timer for height 2"
        timers_before = len(engine._timers)
        # The junk comes back as an ordinary event; it fails on its own.
        events = queued(engine)
        assert [e.kind for e in events if isinstance(e, PeerMessage)] == [msg.PROPOSAL]
        for event in events:
            with pytest.raises(CodecError):
                engine._handle(event)
        assert engine.state.height == 2 and len(engine._timers) >= timers_before
        engine.stop()

    run(scenario)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"round": 3}, "far_round"),
        ({"key": "mallory"}, "not_proposer"),
        ({"bad_signature": True}, "bad_signature"),
        ({"size": 9 * 1024 * 1024}, "too_large"),
    ],
)
def test_invalid_next_height_messages_are_not_kept(change: dict[str, Any], reason: str) -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        height = engine.height + 2
        round_ = change.get("round", 0)
        proposer = engine.get_validators(height).get_proposer(height, round_)
        key = make_node_key(change.get("key", proposer.name))
        proposal = cs.sign_proposal(key, CHAIN_ID, height, round_, b"\x42" * 32, -1)
        if change.get("bad_signature"):
            proposal = cs.Proposal(
                height, round_, b"\x43" * 32, -1, proposal.proposer, proposal.signature
            )
        raw_block = b"x" * change.get("size", 100)
        engine._handle(PeerMessage(PEER, msg.PROPOSAL, [proposal.encode(), raw_block, b""]))
        assert len(engine.future) == 0
        assert engine.dropped_future == {reason: 1}
        engine.stop()

    run(scenario)


def test_next_height_vote_from_a_non_validator_is_not_kept() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        vote = cs.sign_vote(
            make_node_key("nobody"), CHAIN_ID, cs.VoteType.PREVOTE, 2, 0, b"\x42" * 32
        )
        engine._handle(PeerMessage(PEER, msg.VOTE, vote.encode()))
        assert len(engine.future) == 0 and engine.dropped_future == {"not_validator": 1}
        engine.stop()

    run(scenario)


def test_inbox_bounds_step_table() -> None:
    """Each row: (peer, step, value, size) offered -> the reason, or None if kept."""
    inbox = FutureInbox(max_per_peer=3, max_bytes_per_peer=1000)
    a, b = b"a" * 32, b"b" * 32
    step = (17, 0, 0, b"p" * 32)
    rows: list[tuple[bytes, tuple[int, int, int, bytes], bytes, int, str | None]] = [
        (a, step, b"v1", 100, None),
        (a, step, b"v1", 100, "duplicate"),
        (a, step, b"v2", 100, None),  # the second value: what evidence needs
        (a, step, b"v3", 100, "equivocation"),
        (a, (18, 0, 1, b"q" * 32), b"v", 100, None),
        (a, (18, 0, 2, b"q" * 32), b"v", 100, "peer_full"),  # 3 per peer
        (b, (18, 1, 1, b"q" * 32), b"v", 2000, "peer_full"),  # bytes per peer
        (b, (18, 1, 1, b"q" * 32), b"v", 900, None),
    ]
    for peer, key, value, size, expected in rows:
        assert inbox.offer(peer, key, value, size, (peer, value)) == expected, (key, value)
    assert inbox.peer_bytes(a) == 300 and inbox.peer_bytes(b) == 900
    assert inbox.drain() == [(a, b"v1"), (a, b"v2"), (a, b"v"), (b, b"v")]
    assert len(inbox) == 0 and inbox.peer_bytes(a) == 0


def test_one_block_per_round_is_executed() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        name = proposer_name(engine)
        key = make_node_key(name)
        first = build(engine, [pay(0)], name)
        second = build(engine, [pay(0, amount=11)], name)
        engine._handle(full_message(propose(first, key), first))
        engine._handle(full_message(propose(second, key), second))
        assert list(engine.candidates) == [first.hash]
        assert engine.metrics.dropped_proposals == {"second_block_for_round": 1}
        # the machine saw both signed proposals: equivocation, recorded once
        assert engine.evidence_count == 1
        third = build(engine, [pay(0, amount=12)], name)
        engine._handle(full_message(propose(third, key), third))
        assert engine.evidence_count == 1 and list(engine.candidates) == [first.hash]
        engine.stop()

    run(scenario)


def test_far_round_proposal_is_not_executed() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        round_ = 3
        name = proposer_name(engine, round_)
        block = build(engine, [pay(0)], name)
        engine._handle(full_message(propose(block, make_node_key(name), round_), block))
        assert engine.candidates == {}
        assert engine.metrics.dropped_proposals == {"far_round": 1}
        engine.stop()

    run(scenario)


def evidence_of(validator: str, height: int, round_: int, n: int) -> cs.Evidence:
    key = make_node_key(validator)
    first = cs.sign_vote(key, CHAIN_ID, cs.VoteType.PREVOTE, height, round_, b"\x01" * 32)
    second = cs.sign_vote(key, CHAIN_ID, cs.VoteType.PREVOTE, height, round_, bytes([n]) * 32)
    return cs.Evidence(first, second)


def test_evidence_pool_dedups_bounds_and_prunes() -> None:
    store = MemoryStore()
    pool = EvidencePool(store, keep_heights=10, max_records=3)
    assert pool.record(evidence_of("aba", 5, 0, 2))
    assert not pool.record(evidence_of("aba", 5, 0, 3))  # same validator, height, round, type
    assert pool.record(evidence_of("aba", 5, 1, 2))
    assert pool.record(evidence_of("wing", 12, 0, 2))
    assert not pool.record(evidence_of("wing", 13, 0, 2))  # full
    assert pool.summary().to_json() == {"stored": 3, "duplicates": 1, "dropped_full": 1}
    # a restart counts what is stored
    assert EvidencePool(store, keep_heights=10, max_records=3).stored == 3
    assert pool.prune(15) == 0  # cutoff 5: height 5 is kept
    assert pool.prune(16) == 2 and pool.stored == 1
    assert pool.record(evidence_of("wing", 13, 0, 2))


class FailingStore(MemoryStore):
    """A store whose writes fail once `broken` is set, as a full disk's would."""

    broken = False

    def atomic_batch(self, sync: bool = True) -> Any:
        if self.broken:
            raise StoreError("write failed: No space left on device")
        return super().atomic_batch(sync)


def test_store_failure_in_an_action_stops_the_engine_loudly() -> None:
    async def main() -> None:
        store = FailingStore()
        engine, _ = make_engine(store)
        failures: list[BaseException] = []
        engine._on_fatal = failures.append
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(0)
        store.broken = True
        block = build(engine, [pay(0)], proposer_name(engine))
        engine.submit(full_message(propose(block, make_node_key(block.header.proposer)), block))
        for vote in precommits(engine, block):
            engine.submit(vote)
        await asyncio.wait_for(task, 5)  # run() returned instead of going on
        assert len(failures) == 1 and isinstance(failures[0], EngineFailure | StoreError)
        assert engine.failure is failures[0]
        assert engine.height == 0  # nothing half-committed
        assert not engine._timers

    asyncio.run(main())


def test_unsolicited_blocks_are_dropped_undecoded() -> None:
    def scenario() -> None:
        engine, sent = make_engine()
        engine._handle(PeerMessage(PEER, msg.BLOCKS, [[b"junk", b"junk"]]))
        assert engine.sync_verdicts == {"unsolicited": 1} and engine.height == 0
        # A liar's claim makes the engine ask it, and nothing else: its claim is untrusted.
        engine._handle(PeerMessage(PEER, msg.STATUS, [2**63 - 1, b"\x00" * 32]))
        assert [kind for _, kind, _ in sent] == [msg.GET_BLOCKS]
        assert sent[0][2] == [1, msg.MAX_SYNC_BLOCKS]
        engine._handle(PeerMessage(PEER, msg.BLOCKS, [[b"junk", b"junk"]]))
        assert engine.sync_verdicts == {"unsolicited": 1, "invalid": 1} and engine.height == 0
        engine.stop()

    run(scenario)


def test_block_building_runs_a_payment_after_the_payment_that_funds_it() -> None:
    """Fair interleaving may put bob's payment (funded only by alice's, pending) first:
    it runs again after the txs that passed, and both go into the block."""

    def scenario() -> None:
        engine, _ = make_engine()
        now = engine.clock_ms()
        spend = make_tx(
            "bob@aclb", 0, Transfer("bob@aclb", "carol@wing", "KHR", 7), created_at=now - 1_000
        )
        fund = pay(0, amount=10)  # alice -> bob
        engine.mempool.add(spend, spend.encode(), now)
        engine.mempool.add(fund, fund.encode(), now)
        assert next(tx.hash for tx in engine.mempool.candidates(10, 1 << 20)) == spend.hash
        candidate = engine._build_block(1)
        assert [tx.hash for tx in candidate.block.txs] == [fund.hash, spend.hash]
        assert engine.mempool.rejection_of(spend.hash) is None
        engine.stop()

    run(scenario)


def test_a_second_block_for_a_round_is_not_even_decoded() -> None:
    """A Byzantine proposer signing many blocks for its round gets one decoded: the
    others are refused before their bytes are looked at (junk bytes raise nothing)."""

    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        key = make_node_key(name)
        first = build(engine, [pay(0)], name)
        engine._handle(full_message(propose(first, key), first))
        for i in range(20):
            signed = cs.sign_proposal(key, CHAIN_ID, 1, 0, bytes([i]) * 32, -1)
            engine._handle(PeerMessage(PEER, msg.PROPOSAL, [signed.encode(), b"junk", b""]))
        assert list(engine.candidates) == [first.hash]
        assert engine.metrics.dropped_proposals == {"second_block_for_round": 20}
        # A compact proposal naming more txs than a block may hold is not looked at.
        next_name = proposer_name(engine, 1)
        signed = cs.sign_proposal(make_node_key(next_name), CHAIN_ID, 1, 1, b"\x09" * 32, -1)
        hashes = [b"\x01" * 32] * (engine.config.max_block_txs + 1)
        engine._handle(
            PeerMessage(PEER, msg.COMPACT_PROPOSAL, [signed.encode(), b"x", hashes, b""])
        )
        assert engine.metrics.dropped_proposals["too_many_txs"] == 1
        assert sent == []
        engine.stop()

    run(scenario)


def test_the_full_proposal_is_asked_for_once_per_block() -> None:
    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        block = build(engine, [pay(0)], name)  # this node's mempool lacks the tx
        proposal = propose(block, make_node_key(name))
        compact = PeerMessage(
            PEER,
            msg.COMPACT_PROPOSAL,
            [proposal.encode(), block.header.encode(), [tx.hash for tx in block.txs], b""],
        )
        for _ in range(5):
            engine._handle(compact)
        assert sent == [(PEER, msg.GET_PROPOSAL, block.hash)]
        engine.stop()

    run(scenario)


def test_one_equivocator_cannot_crowd_out_the_others_evidence() -> None:
    pool = EvidencePool(MemoryStore(), keep_heights=1000, max_records=10, max_per_validator=3)
    assert [pool.record(evidence_of("aba", 5, r, 2)) for r in range(5)] == [True] * 3 + [False] * 2
    assert pool.record(evidence_of("wing", 5, 0, 2))
    assert pool.summary().to_json() == {"stored": 4, "duplicates": 0, "dropped_full": 2}
