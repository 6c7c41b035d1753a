"""Shared verification of gossip (node/attest.py): who verifies a batch, who vouched, what
waits, and the mempool taking vouched signatures as verified (nothing else)."""

from __future__ import annotations

import pytest

from consensus.validators import ValidatorSet
from ledger.commands import Transfer
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxSignature
from node import attest
from node.attest import Attestations, compute_batch_digest, designated_verifiers, is_vouched
from node.mempool import Mempool, MempoolError
from tests.ledger.helpers import CHAIN_ID, Ledger, make_tx


def _set(n: int) -> tuple[ValidatorSet, list[bytes]]:
    keys = [bytes([i + 1]) * 32 for i in range(n)]
    return ValidatorSet.of([(f"v{i}", key) for i, key in enumerate(keys)]), keys


def _pay(ledger: Ledger, nonce: int) -> SignedTx:
    cmd = Transfer("alice@aclb", "carol@wing", "KHR", 10)
    return make_tx("alice@aclb", nonce, cmd, created_at=ledger.time_ms)


def _zero_signature(tx: SignedTx) -> SignedTx:
    sig = tx.signatures[0]
    return SignedTx(tx.body, (TxSignature(sig.public_key, b"\0" * 64),))


OTHER = b"\x77" * 32  # a peer that is no validator


def test_the_digest_binds_every_wire_hash_in_order() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    assert compute_batch_digest([a, b]) != compute_batch_digest([b, a])
    assert compute_batch_digest([a]) != compute_batch_digest([a, a])
    assert compute_batch_digest([a, b]) == compute_batch_digest([a, b])
    assert len(compute_batch_digest([])) == attest.DIGEST_SIZE


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10])
def test_f_plus_one_verify_each_batch_with_the_origin(n: int) -> None:
    validators, keys = _set(n)
    digest = b"\xab" * 32
    for index, origin in enumerate(keys):
        chosen = designated_verifiers(validators, origin, digest)
        # the origin verified it: f more, the ones after it in the set's order
        assert len(chosen) == validators.one_correct - 1
        assert origin not in chosen
        assert list(chosen) == [keys[(index + k) % n] for k in range(1, len(chosen) + 1)]
        assert is_vouched(validators, {origin, *chosen})
        if chosen:  # one short of f+1
            assert not is_vouched(validators, {origin, *chosen[:-1]})
    # from a node that is no validator: f+1 validators, where the digest points
    chosen = designated_verifiers(validators, OTHER, digest)
    assert len(set(chosen)) == validators.one_correct and set(chosen) <= set(keys)
    start = int.from_bytes(digest[:8], "big") % n
    assert chosen[0] == keys[start]


def test_a_batch_is_vouched_by_f_plus_one_distinct_validators_only() -> None:
    validators, keys = _set(7)  # f = 2: three vouchers
    book = Attestations(max_waiting_txs=100)
    ledger = Ledger()
    tx = _pay(ledger, 0)
    digest = compute_batch_digest([tx.wire_hash])
    batch = book.wait(validators, keys[0], digest, [(tx, tx.encode())])
    assert batch is not None and batch.vouchers == {keys[0]}  # the origin counts
    assert book.lookup(tx.hash) == (tx, tx.encode())
    # no validator, or the origin again, or one validator twice: still one short
    assert book.vouch(validators, OTHER, digest) is None
    assert book.vouch(validators, keys[0], digest) is None
    assert book.vouch(validators, keys[1], digest) is None
    assert book.vouch(validators, keys[1], digest) is None
    assert not is_vouched(validators, batch.vouchers)
    # the third distinct validator completes it, once
    assert book.vouch(validators, keys[5], digest) is batch
    assert is_vouched(validators, batch.vouchers)
    assert book.vouch(validators, keys[6], digest) is None
    book.release(batch)
    assert book.lookup(tx.hash) is None and len(book) == 0 and book.waiting_txs == 0
    # vouchers count against the set of the moment: keys that left count no more
    gone = (keys[1], keys[5], keys[6])
    smaller = ValidatorSet(tuple(v for v in validators.validators if v.public_key not in gone))
    assert smaller.one_correct == 2 and not is_vouched(smaller, batch.vouchers)


def test_an_origin_that_is_no_validator_counts_for_nothing() -> None:
    validators, keys = _set(4)
    book = Attestations(max_waiting_txs=100)
    tx = _pay(Ledger(), 0)
    digest = compute_batch_digest([tx.wire_hash])
    batch = book.wait(validators, OTHER, digest, [(tx, tx.encode())])
    assert batch is not None and batch.vouchers == set()
    assert book.vouch(validators, keys[2], digest) is None
    assert book.vouch(validators, keys[3], digest) is batch


def test_attestations_that_come_first_are_kept_bounded() -> None:
    validators, keys = _set(4)
    book = Attestations(max_waiting_txs=100)
    tx = _pay(Ledger(), 0)
    digest = compute_batch_digest([tx.wire_hash])
    assert book.vouch(validators, OTHER, digest) is None  # not kept: no validator
    assert book.vouch(validators, keys[1], digest) is None  # kept for the batch
    batch = book.wait(validators, keys[0], digest, [(tx, tx.encode())])
    assert batch is not None and batch.vouchers == {keys[0], keys[1]}
    assert is_vouched(validators, batch.vouchers)
    # a flood of attestations for batches never sent keeps MAX_EARLY digests
    for i in range(attest.MAX_EARLY + 50):
        book.vouch(validators, keys[2], i.to_bytes(32, "big"))
    assert len(book._early) == attest.MAX_EARLY
    assert (0).to_bytes(32, "big") not in book._early


def test_waiting_is_bounded_and_a_repeat_is_not_held_twice() -> None:
    validators, keys = _set(4)
    ledger = Ledger()
    txs = [_pay(ledger, i) for i in range(3)]
    items = [(tx, tx.encode()) for tx in txs]
    book = Attestations(max_waiting_txs=4)
    first = compute_batch_digest([tx.wire_hash for tx in txs])
    assert book.wait(validators, keys[0], first, items) is not None
    assert book.wait(validators, keys[0], first, items) is None  # the same batch again
    second = compute_batch_digest([txs[0].wire_hash, txs[1].wire_hash])
    assert book.wait(validators, keys[0], second, items[:2]) is None  # 5 > 4: verify now
    assert book.waiting_txs == 3


def _mempool(ledger: Ledger) -> Mempool:
    return Mempool(
        ledger.store,
        CHAIN_ID,
        capacity=100,
        nonce_window=5,
        tx_ttl_ms=3_600_000,
        max_clock_skew_ms=60_000,
    )


def test_vouched_signatures_are_taken_as_verified_and_nothing_else() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    good = _pay(ledger, 0)
    forged = _zero_signature(_pay(ledger, 1))
    # unvouched, the forged one is refused as always
    [(_, error)] = mempool.add_many([(forged, forged.encode())], ledger.time_ms, persist=False)
    assert isinstance(error, MempoolError) and error.code == "bad_signature"
    # vouched: not verified here, and cached as verified (a block carrying it is not
    # checked again) only once admitted
    outcomes = mempool.add_many(
        [(good, good.encode()), (forged, forged.encode())],
        ledger.time_ms,
        persist=False,
        vouched={good.wire_hash, forged.wire_hash},
    )
    assert [error for _, error in outcomes] == [None, None]
    assert forged.wire_hash in mempool.verified
    # every other check still runs on a vouched tx: a stranger's key is refused
    stranger = make_tx(
        "alice@aclb",
        2,
        Transfer("alice@aclb", "carol@wing", "KHR", 10),
        created_at=ledger.time_ms,
        key=PrivateKey.generate(),
    )
    [(_, error)] = mempool.add_many(
        [(stranger, stranger.encode())],
        ledger.time_ms,
        persist=False,
        vouched={stranger.wire_hash},
    )
    assert isinstance(error, MempoolError) and error.code == "bad_signature"
    assert stranger.wire_hash not in mempool.verified
