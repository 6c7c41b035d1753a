"""BlockJudge and BlockBuilder on a MemoryStore, as step tables: one change to a good
block per row and the code it must be refused with; what the builder puts in a block
and what it rejects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import consensus as cs
from genesis.load import load_genesis_into
from ledger import chain
from ledger.block import NO_COMMIT_HASH, Block, build_block
from ledger.commands import Transfer
from ledger.errors import LedgerError
from ledger.state import get_validator_set
from ledger.store.memory import MemoryStore
from ledger.transition import BlockContext, apply_block
from ledger.tx import SignedTx, TxSignature
from node.blocks import BlockBuilder, BlockJudge, BlockLimits, Tip
from node.mempool import VerifiedCache, split_reason
from tests.ledger.helpers import CHAIN_ID, GENESIS_TIME, make_genesis, make_key, make_tx

NOW = GENESIS_TIME + 10_000
LIMITS = BlockLimits(max_txs=10, max_bytes=4096)


def setup() -> tuple[MemoryStore, Tip, Any]:
    store = MemoryStore()
    load_genesis_into(store, make_genesis())
    genesis_hash = chain.get_block_hash(store, 0)
    assert genesis_hash is not None

    def validators_at(height: int) -> cs.ValidatorSet:
        return cs.ValidatorSet.of(list(get_validator_set(store, height)))

    return store, Tip(0, genesis_hash), validators_at


def pay(nonce: int, amount: int = 10, signer: str = "alice@aclb") -> SignedTx:
    cmd = Transfer(signer, "bob@aclb" if signer != "bob@aclb" else "carol@wing", "KHR", amount)
    return make_tx(signer, nonce, cmd, created_at=NOW - 1_000)


def good_block(store: MemoryStore, tip: Tip, validators_at: Any, txs: list[SignedTx]) -> Block:
    ctx = BlockContext(CHAIN_ID, 1, NOW)
    prev_state = chain.get_state_hash(store, 0)
    assert prev_state is not None
    result = apply_block(store, prev_state, ctx, txs)
    validators = validators_at(1)
    return build_block(
        chain_id=CHAIN_ID,
        height=1,
        time_ms=NOW,
        prev_hash=tip.hash,
        state_hash=result.state_hash,
        proposer=validators.validators[0].name,
        validator_set_hash=validators.hash,
        last_commit_hash=NO_COMMIT_HASH,
        txs=txs,
    )


def with_header(block: Block, **changes: Any) -> Block:
    return Block(replace(block.header, **changes), block.txs)


ROWS: list[tuple[str, Any, str]] = [
    ("another chain", lambda b: with_header(b, chain_id="other"), "wrong_chain"),
    ("wrong height", lambda b: with_header(b, height=2), "bad_height"),
    ("not on the tip", lambda b: with_header(b, prev_hash=b"\x01" * 32), "bad_prev_hash"),
    ("wrong set", lambda b: with_header(b, validator_set_hash=b"\x02" * 32), "bad_validator_set"),
    ("unknown proposer", lambda b: with_header(b, proposer="nobody"), "bad_proposer"),
    ("from the future", lambda b: with_header(b, time_ms=NOW + 10**9), "bad_time"),
    (
        "a last commit at 1",
        lambda b: with_header(b, last_commit_hash=b"\x03" * 32),
        "bad_last_commit",
    ),
    ("wrong state", lambda b: with_header(b, state_hash=b"\x04" * 32), "bad_state_hash"),
    ("too many txs", lambda b: Block(b.header, tuple(pay(n) for n in range(11))), "too_many_txs"),
    ("a tx that fails", lambda b: Block(b.header, (pay(5),)), "bad_tx"),
    (
        "a zero signature",
        lambda b: Block(
            b.header,
            (
                SignedTx(
                    b.txs[0].body, (TxSignature(b.txs[0].signatures[0].public_key, bytes(64)),)
                ),
            ),
        ),
        "bad_signature",
    ),
]


@pytest.mark.parametrize(("what", "change", "code"), ROWS, ids=[r[0] for r in ROWS])
def test_invalid_block_step_table(what: str, change: Any, code: str) -> None:
    store, tip, validators_at = setup()
    cache = VerifiedCache()
    judge = BlockJudge(store, CHAIN_ID, LIMITS, validators_at, cache, 60_000)
    block = change(good_block(store, tip, validators_at, [pay(0)]))
    with pytest.raises((LedgerError, cs.ConsensusError)) as err:
        judge.validate(block, None, tip, NOW)
    assert getattr(err.value, "code", None) == code, err.value
    assert len(cache) == 0  # nothing of a refused block is remembered as verified


def test_valid_block_caches_its_signatures_and_sync_skips_the_live_checks() -> None:
    store, tip, validators_at = setup()
    cache = VerifiedCache()
    judge = BlockJudge(store, CHAIN_ID, LIMITS, validators_at, cache, 60_000)
    txs = [pay(0), pay(1)]
    block = good_block(store, tip, validators_at, txs)
    judge.validate(block, None, tip, NOW)
    assert all(tx.wire_hash in cache for tx in txs)
    # a synced block (now_ms None): its time is vouched for by its commit certificate
    late = with_header(block, time_ms=NOW + 10**9)
    with pytest.raises(LedgerError):
        judge.validate(late, None, tip, NOW)
    with pytest.raises(LedgerError) as err:  # its txs still expire against its time
        judge.validate(late, None, tip, None)
    assert err.value.code == "bad_tx"


def builder() -> tuple[BlockBuilder, Tip]:
    store, tip, validators_at = setup()
    own = make_key("node/" + validators_at(1).validators[0].name).public_key
    return BlockBuilder(store, CHAIN_ID, LIMITS, validators_at, own), tip


def test_builder_rejections_say_what_failed() -> None:
    build, tip = builder()
    built = build.build(tip, NOW, [pay(0, 10**12)])
    [(_, reason)] = built.rejected
    code, message = split_reason(reason)
    assert code == "insufficient_funds"
    assert "holds" in message and "needs 1,000,000,000,000 KHR" in message, message


def test_builder_step_table() -> None:
    """(candidates in mempool order) -> (txs in the block, rejected codes)."""
    funded_later = pay(0, 7, signer="bob@aclb")  # bob has nothing until alice pays him
    rows: list[tuple[list[SignedTx], list[SignedTx], list[str]]] = [
        ([pay(0), pay(1)], [pay(0), pay(1)], []),
        ([funded_later, pay(0)], [pay(0), funded_later], []),  # run again after its funding
        ([pay(0, 10**12)], [], ["insufficient_funds"]),
        ([pay(3)], [], []),  # a nonce ahead waits for the gap; not rejected
        ([pay(0), pay(0, 11)], [pay(0)], ["bad_nonce"]),  # the same nonce twice
    ]
    for candidates, expected, codes in rows:
        build, tip = builder()
        built = build.build(tip, NOW, candidates)
        assert [tx.hash for tx in built.block.txs] == [tx.hash for tx in expected]
        assert [split_reason(reason)[0] for _, reason in built.rejected] == codes
        assert built.block.header.proposer == "aclb"  # the name of the builder's own key
        # what the builder proposes, a judge accepts
        store = build._store
        judge = BlockJudge(store, CHAIN_ID, LIMITS, build._validators_at, VerifiedCache(), 0)
        judge.validate(built.block, None, tip, NOW)
