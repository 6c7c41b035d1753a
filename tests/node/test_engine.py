"""Engine, in process on a MemoryStore: a peer's proposal is checked (proposer, signature)
before its block is decoded or executed, nothing of an invalid block is remembered as
verified, block sync verifies every signature even with an empty cache, and the cache
forgets committed txs.

The engine here is an observer (not a validator): it judges blocks and follows votes but
never proposes, so no test depends on its own timers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import consensus as cs
from genesis.load import load_genesis_into
from ledger import chain
from ledger.block import Block, Commit, CommitSig, build_block
from ledger.commands import Transfer
from ledger.crypto import PrivateKey
from ledger.kv import KeyValueStore
from ledger.store.memory import MemoryStore
from ledger.transition import BlockContext, apply_block
from ledger.tx import SignedTx, TxSignature
from node import messages as msg
from node.config import ConsensusConfig
from node.engine import ZERO_HASH, Candidate, Engine, PeerMessage
from node.mempool import Mempool, MempoolError, PendingTx
from node.metrics import Metrics
from tests.ledger.helpers import CHAIN_ID, GENESIS_TIME, make_genesis, make_key, make_node_key
from tests.ledger.helpers import make_tx as make_signed_tx

NOW = GENESIS_TIME + 10_000
PEER = b"p" * 32
OBSERVER = make_key("observer node")
MALLORY = make_key("mallory")
ALICE = make_key("alice@aclb")
GENESIS = make_genesis()

Sent = list[tuple[bytes, int, Any]]


def make_engine(
    store: KeyValueStore | None = None, *, trust_commits: bool = False
) -> tuple[Engine, Sent]:
    """An observer engine at the height after its store's tip, with a fresh cache. It
    judges every proposal as a validator does (`trust_commits` off) unless asked to
    follow (see tests/node/test_follower.py)."""
    store = store or MemoryStore()
    load_genesis_into(store, GENESIS)
    mempool = Mempool(
        store,
        CHAIN_ID,
        capacity=100,
        nonce_window=10,
        tx_ttl_ms=GENESIS.params.tx_ttl_ms,
        max_clock_skew_ms=GENESIS.params.max_clock_skew_ms,
    )
    sent: Sent = []

    def send(peer: bytes, kind: int, payload: Any) -> bool:
        sent.append((peer, kind, payload))
        return True

    engine = Engine(
        store=store,
        chain_id=CHAIN_ID,
        node_key=OBSERVER,
        config=ConsensusConfig(timeout_commit_ms=0, trust_commits=trust_commits),
        mempool=mempool,
        metrics=Metrics(),
        send=send,
        broadcast=lambda kind, payload: 0,
        on_commit=lambda block, result: None,
        clock_ms=lambda: NOW,
    )
    engine._enter_height(restored=True)
    return engine, sent


def run(scenario: Callable[[], None]) -> None:
    """Run `scenario` inside an event loop (the engine arms timers), then stop them."""

    async def main() -> None:
        scenario()

    asyncio.run(main())


def pay(nonce: int, amount: int = 10, key: PrivateKey | None = None) -> SignedTx:
    cmd = Transfer("alice@aclb", "bob@aclb", "KHR", amount)
    return make_signed_tx("alice@aclb", nonce, cmd, created_at=NOW - 1_000, key=key)


def forge(tx: SignedTx, public_key: bytes) -> SignedTx:
    """The same body, claimed by `public_key` with 64 zero bytes for a signature."""
    return SignedTx(tx.body, (TxSignature(public_key, bytes(64)),))


def proposer_name(engine: Engine, round_: int = 0) -> str:
    height = engine.height + 1
    return engine.get_validators(height).get_proposer(height, round_).name


def build(
    engine: Engine, txs: Sequence[SignedTx], proposer: str, state_hash: bytes | None = None
) -> Block:
    """The block a proposer named `proposer` would build on the engine's tip."""
    store, height = engine.store, engine.height + 1
    prev_state = chain.get_state_hash(store, height - 1)
    assert prev_state is not None
    result = apply_block(store, prev_state, BlockContext(CHAIN_ID, height, NOW), txs)
    prev_hash = chain.get_block_hash(store, height - 1)
    assert prev_hash is not None
    last_commit = chain.get_commit(store, height - 1) if height > 1 else None
    return build_block(
        chain_id=CHAIN_ID,
        height=height,
        time_ms=NOW,
        prev_hash=prev_hash,
        state_hash=state_hash or result.state_hash,
        proposer=proposer,
        validator_set_hash=engine.get_validators(height).hash,
        last_commit_hash=last_commit.hash if last_commit else ZERO_HASH,
        txs=txs,
    )


def propose(block: Block, key: PrivateKey, round_: int = 0) -> cs.Proposal:
    return cs.sign_proposal(key, CHAIN_ID, block.height, round_, block.hash, -1)


def full_message(proposal: cs.Proposal, block: Block) -> PeerMessage:
    return PeerMessage(PEER, msg.PROPOSAL, [proposal.encode(), block.encode(), b""])


def compact_message(proposal: cs.Proposal, block: Block) -> PeerMessage:
    hashes = [tx.hash for tx in block.txs]
    return PeerMessage(
        PEER, msg.COMPACT_PROPOSAL, [proposal.encode(), block.header.encode(), hashes, b""]
    )


def certify(engine: Engine, block: Block) -> Commit:
    """A commit signed by every validator of the block's height."""
    sigs = []
    for validator in engine.get_validators(block.height).validators:
        vote = cs.sign_vote(
            make_node_key(validator.name),
            CHAIN_ID,
            cs.VoteType.PRECOMMIT,
            block.height,
            0,
            block.hash,
        )
        sigs.append(CommitSig(vote.validator, vote.signature))
    return Commit(block.height, 0, block.hash, tuple(sigs))


def refused_code(engine: Engine, tx: SignedTx) -> str:
    try:
        engine.mempool.add(tx, tx.encode(), NOW)
    except MempoolError as exc:
        return exc.code
    raise AssertionError("admitted")


def test_invalid_proposal_from_non_proposer_is_never_executed() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        evil = pay(0, amount=40_000, key=MALLORY)
        validators = engine.get_validators(1).validators
        other = next(v.name for v in validators if v.name != proposer_name(engine))
        block = build(engine, [evil], other)
        engine._handle(full_message(propose(block, make_node_key(other)), block))
        outsider = build(engine, [evil], other)
        engine._handle(full_message(propose(outsider, MALLORY), outsider))
        assert engine.candidates == {}
        assert evil.wire_hash not in engine.mempool.verified
        assert len(engine.mempool.verified) == 0
        assert engine.dropped_messages == 2
        assert engine.metrics.dropped_proposals == {"not_proposer": 2}
        assert refused_code(engine, forge(evil, ALICE.public_key)) == "bad_signature"
        engine.stop()

    run(scenario)


def test_invalid_proposal_signature_is_never_executed() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        evil = pay(0, amount=40_000, key=MALLORY)
        name = proposer_name(engine)
        block = build(engine, [evil], name)
        decoy = build(engine, [], name)
        signed = propose(decoy, make_node_key(name))
        forged = replace(signed, block_hash=block.hash)
        engine._handle(full_message(forged, block))
        engine._handle(compact_message(forged, block))
        assert engine.candidates == {}
        assert len(engine.mempool.verified) == 0
        assert engine.metrics.dropped_proposals == {"bad_signature": 2}
        assert refused_code(engine, forge(evil, ALICE.public_key)) == "bad_signature"
        engine.stop()

    run(scenario)


def test_invalid_block_of_the_proposer_caches_nothing() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        name = proposer_name(engine)
        key = make_node_key(name)
        # a tx signed by a throw-away key for alice: execution refuses the foreign key
        evil = pay(0, amount=40_000, key=MALLORY)
        block = build(engine, [evil], name)
        engine._handle(full_message(propose(block, key), block))
        assert not engine.candidates[block.hash].valid
        assert evil.wire_hash not in engine.mempool.verified
        assert refused_code(engine, forge(evil, ALICE.public_key)) == "bad_signature"
        # a genuine tx verified before the block fails (a zero signature after it):
        # nothing of the invalid block enters the cache
        genuine, zero = pay(0), forge(pay(1), ALICE.public_key)
        next_name = proposer_name(engine, round_=1)
        second = build(engine, [genuine, zero], next_name)
        engine._handle(full_message(propose(second, make_node_key(next_name), 1), second))
        assert not engine.candidates[second.hash].valid
        assert len(engine.mempool.verified) == 0
        assert len(engine.mempool) == 0
        engine.stop()

    run(scenario)


def test_valid_proposal_caches_its_signatures_after_validation() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        name = proposer_name(engine)
        txs = [pay(0), pay(1)]
        block = build(engine, txs, name)
        engine._handle(full_message(propose(block, make_node_key(name)), block))
        assert engine.candidates[block.hash].valid
        assert all(tx.wire_hash in engine.mempool.verified for tx in txs)
        assert engine.dropped_messages == 0
        engine.stop()

    run(scenario)


def test_invalid_block_naming_another_proposer() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        name = proposer_name(engine)
        other = next(v.name for v in engine.get_validators(1).validators if v.name != name)
        block = build(engine, [pay(0)], other)
        engine._handle(full_message(propose(block, make_node_key(name)), block))
        assert engine.candidates == {}
        assert engine.metrics.dropped_proposals == {"wrong_block_proposer": 1}
        engine.stop()

    run(scenario)


def test_compact_proposal_with_another_signed_variant_fetches_the_full_block() -> None:
    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        genuine = pay(0)
        # this node's mempool holds another signed variant of the same body
        variant = forge(genuine, ALICE.public_key)
        engine.mempool._insert(PendingTx(variant, variant.encode(), NOW))
        block = build(engine, [genuine], name)
        proposal = propose(block, make_node_key(name))
        engine._handle(compact_message(proposal, block))
        assert sent == [(PEER, msg.GET_PROPOSAL, block.hash)]
        assert engine.candidates == {}
        assert engine.metrics.fetched_proposals == {"tx_root": 1}
        engine._handle(full_message(proposal, block))
        assert engine.candidates[block.hash].valid
        engine.stop()

    run(scenario)


def test_a_full_block_reuses_the_txs_the_mempool_holds() -> None:
    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        held, missing = pay(0), pay(1)
        engine.mempool._insert(PendingTx(held, held.encode(), NOW))
        block = build(engine, [held, missing], name)
        proposal = propose(block, make_node_key(name))
        engine._handle(compact_message(proposal, block))
        assert sent == [(PEER, msg.GET_PROPOSAL, block.hash)]  # one tx is missing
        assert engine.metrics.fetched_proposals == {"missing_txs": 1}
        engine._handle(full_message(proposal, block))
        candidate = engine.candidates[block.hash]
        assert candidate.valid
        assert candidate.block.txs[0] is held  # the mempool's copy, not decoded again
        assert candidate.block.txs[1] is not missing and candidate.block.txs[1] == missing
        engine.stop()

    run(scenario)


def test_a_compact_proposal_may_name_txs_waiting_for_vouchers() -> None:
    """Gossiped txs held until validators vouch for them (node/attest.py) fill a compact
    proposal without a fetch, and their signatures are verified when it is judged: they
    are not in the verified cache."""

    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        admitted, waiting = pay(0), pay(1)
        engine.mempool._insert(PendingTx(admitted, admitted.encode(), NOW))
        engine.mempool.verified.add(admitted.wire_hash)
        held = {waiting.hash: (waiting, waiting.encode())}
        engine.waiting_tx = held.get
        block = build(engine, [admitted, waiting], name)
        engine._handle(compact_message(propose(block, make_node_key(name)), block))
        assert sent == []  # nothing fetched
        candidate = engine.candidates[block.hash]
        assert candidate.valid and candidate.block.txs[1] is waiting
        assert waiting.wire_hash in engine.mempool.verified  # verified, after the block
        # a waiting forged variant is verified too, and refused
        forged = forge(pay(2), ALICE.public_key)
        held[forged.hash] = (forged, forged.encode())
        next_name = proposer_name(engine, round_=1)
        second = build(engine, [forged], next_name)
        engine._handle(compact_message(propose(second, make_node_key(next_name), 1), second))
        assert sent == []
        assert not engine.candidates[second.hash].valid
        assert forged.wire_hash not in engine.mempool.verified
        engine.stop()

    run(scenario)


def test_judging_a_compact_proposal_waits_once_for_the_held_txs_it_names() -> None:
    """Judging now would verify the held tx here; its vouchers are due within
    milliseconds. The engine asks the runtime to wait (`await_held`) and judges the
    proposal when it is resumed: a tx admitted on its vouchers meanwhile is not verified
    again."""

    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        admitted, waiting = pay(0), pay(1)
        engine.mempool._insert(PendingTx(admitted, admitted.encode(), NOW))
        engine.mempool.verified.add(admitted.wire_hash)
        held = {waiting.hash: (waiting, waiting.encode())}
        engine.waiting_tx = held.get
        asked: list[tuple[list[bytes], Callable[[], None]]] = []
        engine.await_held = lambda hashes, resume: asked.append((hashes, resume)) or True
        block = build(engine, [admitted, waiting], name)
        engine._handle(compact_message(propose(block, make_node_key(name)), block))
        assert [hashes for hashes, _ in asked] == [[waiting.hash]]  # only the held one
        assert engine.candidates == {} and sent == []
        assert engine.metrics.awaited_proposals == 1
        # vouched for meanwhile: admitted without a check, then the proposal comes back
        del held[waiting.hash]
        engine.mempool._insert(PendingTx(waiting, waiting.encode(), NOW))
        engine.mempool.verified.add(waiting.wire_hash)
        asked[0][1]()
        engine._handle(engine.queue.get_nowait())
        assert engine.candidates[block.hash].valid
        assert engine.judge.checks == 0  # nothing verified by the judge
        # nothing held: judged at once, the hook not asked
        name = proposer_name(engine, round_=1)
        second = build(engine, [admitted], name)
        engine._handle(compact_message(propose(second, make_node_key(name), 1), second))
        assert second.hash in engine.candidates and len(asked) == 1
        engine.stop()

    run(scenario)


def test_a_proposal_resumed_with_its_txs_still_held_is_judged_and_not_held_again() -> None:
    """It waits once per block: resumed while its tx is still held (no vouchers came),
    it is judged and the tx verified here. A tx refused here meanwhile (neither pending
    nor held any more) is taken as found before: no fetch of the full block."""

    def scenario() -> None:
        engine, sent = make_engine()
        name = proposer_name(engine)
        first, second = pay(0), pay(1)
        held = {tx.hash: (tx, tx.encode()) for tx in (first, second)}
        engine.waiting_tx = held.get
        asked: list[Callable[[], None]] = []
        engine.await_held = lambda hashes, resume: asked.append(resume) or True
        block = build(engine, [first, second], name)
        engine._handle(compact_message(propose(block, make_node_key(name)), block))
        assert len(asked) == 1 and engine.candidates == {}
        del held[second.hash]  # refused here meanwhile; `first` still held
        asked[0]()
        engine._handle(engine.queue.get_nowait())
        assert len(asked) == 1  # not held back a second time
        assert sent == [] and engine.metrics.fetched_proposals == {}
        candidate = engine.candidates[block.hash]
        assert candidate.valid and candidate.block.txs == (first, second)
        assert engine.judge.checks == 2  # both verified by the judge
        engine.stop()

    run(scenario)


def test_the_default_hook_judges_at_once() -> None:
    def scenario() -> None:
        engine, _ = make_engine()
        name = proposer_name(engine)
        waiting = pay(0)
        engine.waiting_tx = {waiting.hash: (waiting, waiting.encode())}.get
        block = build(engine, [waiting], name)
        engine._handle(compact_message(propose(block, make_node_key(name)), block))
        assert engine.candidates[block.hash].valid
        assert engine.metrics.awaited_proposals == 0
        engine.stop()

    run(scenario)


def ask(engine: Engine, peer_height: int) -> None:
    """Make `engine` request blocks from PEER (only replies to a request count)."""
    engine.sync.on_claim(PEER, peer_height)
    engine.sync.end_grace(engine.height)
    engine._request_sync()
    assert engine.sync.get_awaited(PEER) is not None


def test_sync_with_an_empty_cache_verifies_every_signature() -> None:
    def scenario() -> None:
        # a chain of two blocks, synced into a first node
        first, _ = make_engine()
        name = proposer_name(first)
        blocks = []
        for nonce in range(2):
            block = build(first, [pay(nonce)], name)
            raw = [[block.encode(), certify(first, block).encode()]]
            ask(first, block.height)
            first._handle(PeerMessage(PEER, msg.BLOCKS, raw))
            blocks.append(block)
        assert first.height == 2
        first.stop()
        # a node with a fresh store and an empty cache (as after a restart) syncs them
        served = first.serve_blocks(1, msg.MAX_SYNC_BLOCKS)
        assert len(served) == 2
        second, _ = make_engine()
        assert len(second.mempool.verified) == 0
        ask(second, 2)
        second._handle(PeerMessage(PEER, msg.BLOCKS, served))
        assert second.height == 2
        # verified, then forgotten at commit (a committed tx is never proposed again)
        assert len(second.mempool.verified) == 0
        # a certified block carrying a zero signature is still refused
        zero = forge(pay(2), ALICE.public_key)
        forged = build(second, [zero], name)
        commit = certify(second, forged)
        ask(second, 3)
        second._handle(PeerMessage(PEER, msg.BLOCKS, [[forged.encode(), commit.encode()]]))
        assert second.height == 2
        assert zero.wire_hash not in second.mempool.verified
        second.stop()

    run(scenario)


def test_a_compact_proposal_is_sent_after_the_gossip_of_this_nodes_txs() -> None:
    """It names txs by id: the txs this node admitted but did not gossip yet are queued
    first (`flush_gossip`), so a peer reads them before the proposal that names them."""

    def scenario() -> None:
        engine, _ = make_engine()
        calls: list[object] = []
        engine.flush_gossip = lambda: calls.append("flush")
        engine._broadcast = lambda kind, payload: calls.append(kind) or 1
        block = build(engine, [pay(0)], proposer_name(engine))
        engine.at.candidates[block.hash] = Candidate(block, None, True, None, None)
        engine._send_proposal(propose(block, make_node_key(proposer_name(engine))))
        assert calls == ["flush", msg.COMPACT_PROPOSAL]

    run(scenario)
