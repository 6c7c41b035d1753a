"""A follower (an observer with `trust_commits`, the default), in process on a
MemoryStore: it keeps a proposed block unjudged, executes it once 2f+1 verified
precommits decide it, without checking its txs' signatures again, and commits it; it
never decides on precommits that do not verify, nor on a certificate below the quorum;
a decided block that does not execute is not committed; synced blocks are trusted on
their certificate only when `trust_commits` is on; and it still verifies every tx its
own clients submit. Also: a committed block's parent certificate replaces the stored
one in the block's own write. The validator's side (judging live, caching verified signatures)
is tests/node/test_engine.py, whose observer has `trust_commits` off.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import consensus as cs
from ledger import chain
from ledger.block import Block, Commit, CommitSig
from node import messages as msg
from node.blocks import Tip
from node.engine import Engine, PeerMessage
from tests.ledger.helpers import CHAIN_ID, make_node_key
from tests.node.test_engine import (
    ALICE,
    MALLORY,
    NOW,
    PEER,
    ask,
    build,
    certify,
    compact_message,
    forge,
    full_message,
    make_engine,
    pay,
    propose,
    proposer_name,
    refused_code,
    run,
)


def precommit(name: str, block: Block, key_name: str | None = None) -> PeerMessage:
    """`name`'s precommit for `block`, signed with `key_name`'s key (its own by default)."""
    vote = cs.sign_vote(
        make_node_key(key_name or name), CHAIN_ID, cs.VoteType.PRECOMMIT, block.height, 0,
        block.hash,
    )  # fmt: skip
    if key_name is not None:
        vote = replace(vote, validator=make_node_key(name).public_key)
    return PeerMessage(PEER, msg.VOTE, vote.encode())


def validator_names(engine: Engine) -> list[str]:
    return [v.name for v in engine.get_validators(engine.height + 1).validators]


def test_a_decided_block_is_executed_without_rechecking_signatures() -> None:
    def scenario() -> None:
        engine, sent = make_engine(trust_commits=True)
        assert engine.follows()
        block = build(engine, [pay(0), pay(1)], proposer_name(engine))
        proposal = propose(block, make_node_key(block.header.proposer))
        # the follower holds none of the txs: it asks for the full block
        engine._handle(compact_message(proposal, block))
        assert sent == [(PEER, msg.GET_PROPOSAL, block.hash)]
        engine._handle(full_message(proposal, block))
        candidate = engine.candidates[block.hash]
        assert candidate.trusted and candidate.result is None  # kept, not executed
        for name in validator_names(engine):  # the quorum is all 3 here
            engine._handle(precommit(name, block))
        assert engine.height == 1
        assert engine.metrics.trusted_blocks == 1
        assert len(engine.mempool.verified) == 0  # no signature was verified
        engine.stop()

    run(scenario)


def test_a_block_carrying_another_parent_certificate_replaces_the_stored_one() -> None:
    """The parent's certificate a committed block carries (its last_commit) replaces the
    quorum this node stored for the parent, so that sync serves what the header names;
    it is written with the block (`chain.commit_block`'s parent_commit), not after."""

    def scenario() -> None:
        engine, _ = make_engine(trust_commits=False)
        first = build(engine, [pay(0)], proposer_name(engine))
        engine._handle(full_message(propose(first, make_node_key(first.header.proposer)), first))
        for name in validator_names(engine):
            engine._handle(precommit(name, first))
        assert engine.height == 1
        stored = chain.get_commit(engine.store, 1)
        # the next proposer's certificate for block 1: the same block, decided in round 1
        votes = [
            cs.sign_vote(make_node_key(n), CHAIN_ID, cs.VoteType.PRECOMMIT, 1, 1, first.hash)
            for n in validator_names(engine)
        ]
        other = Commit(1, 1, first.hash, tuple(CommitSig(v.validator, v.signature) for v in votes))
        assert stored is not None and other.hash != stored.hash
        name = proposer_name(engine)
        second = build(engine, [pay(1)], name)
        header = replace(second.header, last_commit_hash=other.hash)
        second = Block(header, second.txs)
        proposal = propose(second, make_node_key(name))
        engine._handle(
            PeerMessage(PEER, msg.PROPOSAL, [proposal.encode(), second.encode(), other.encode()])
        )
        assert engine.candidates[second.hash].valid
        for voter in validator_names(engine):
            engine._handle(precommit(voter, second))
        assert engine.height == 2
        assert chain.get_commit(engine.store, 1) == other
        engine.stop()

    run(scenario)


def test_a_judging_observer_verifies_what_a_follower_trusts() -> None:
    def scenario() -> None:
        engine, _ = make_engine(trust_commits=False)
        assert not engine.follows()
        block = build(engine, [pay(0)], proposer_name(engine))
        engine._handle(full_message(propose(block, make_node_key(block.header.proposer)), block))
        assert engine.candidates[block.hash].result is not None  # judged at once
        assert block.txs[0].wire_hash in engine.mempool.verified
        for name in validator_names(engine):
            engine._handle(precommit(name, block))
        assert engine.height == 1 and engine.metrics.trusted_blocks == 0
        # committed: forgotten by the cache (no proposal may carry it again)
        assert block.txs[0].wire_hash not in engine.mempool.verified
        engine.stop()

    run(scenario)


@pytest.mark.parametrize("kind", ["under_quorum", "copied_signatures"])
def test_no_decision_without_a_quorum_of_verified_precommits(kind: str) -> None:
    """Two genuine precommits (under the quorum of 3), or all three validators with one
    validator's signature copied under the others' keys: never decided, never executed."""

    def scenario() -> None:
        engine, _ = make_engine(trust_commits=True)
        zero = forge(pay(0, amount=40_000), ALICE.public_key)  # executes; never signed
        block = build(engine, [zero], proposer_name(engine))
        engine._handle(full_message(propose(block, make_node_key(block.header.proposer)), block))
        names = validator_names(engine)
        assert engine.get_validators(1).quorum == len(names) == 3
        if kind == "under_quorum":
            votes = [precommit(name, block) for name in names[:2]]
        else:
            votes = [precommit(name, block, key_name=names[0]) for name in names]
        for vote in votes:
            engine._handle(vote)
        assert engine.height == 0
        assert engine.candidates[block.hash].result is None
        engine.stop()

    run(scenario)


def test_a_decided_block_that_does_not_execute_is_not_committed() -> None:
    def scenario() -> None:
        engine, _ = make_engine(trust_commits=True)
        block = build(engine, [pay(0)], proposer_name(engine), state_hash=b"\x11" * 32)
        engine._handle(full_message(propose(block, make_node_key(block.header.proposer)), block))
        for name in validator_names(engine):
            engine._handle(precommit(name, block))
        assert engine.height == 0
        assert engine.metrics.trusted_blocks == 0
        engine.stop()

    run(scenario)


def test_trusted_validation_is_only_for_certified_blocks() -> None:
    engine, _ = make_engine(trust_commits=True)
    block = build(engine, [pay(0)], proposer_name(engine))
    with pytest.raises(ValueError, match="commit certificate"):
        engine.judge.validate(block, None, Tip(0, engine._tip[1]), NOW, trust_signatures=True)


@pytest.mark.parametrize("trust", [True, False])
def test_synced_blocks_are_trusted_on_their_certificate_only_when_configured(trust: bool) -> None:
    """A certified block with a zero signature (2f+1 Byzantine validators signed it):
    `trust_commits` applies it on the certificate; off, the node refuses it."""

    def scenario() -> None:
        engine, _ = make_engine(trust_commits=trust)
        zero = forge(pay(0), ALICE.public_key)
        forged = build(engine, [zero], proposer_name(engine))
        ask(engine, 1)
        engine._handle(
            PeerMessage(PEER, msg.BLOCKS, [[forged.encode(), certify(engine, forged).encode()]])
        )
        assert engine.height == (1 if trust else 0)
        engine.stop()

    run(scenario)


def test_a_followers_own_clients_txs_are_verified() -> None:
    engine, _ = make_engine(trust_commits=True)
    assert refused_code(engine, forge(pay(0), ALICE.public_key)) == "bad_signature"
    assert refused_code(engine, pay(0, key=MALLORY)) == "bad_signature"
    engine.mempool.add(pay(0), pay(0).encode(), NOW)
    assert pay(0).wire_hash in engine.mempool.verified
