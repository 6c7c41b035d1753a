"""Shared verification of gossip (node/attest.py): who verifies a batch, whose vouchers
count, what waits within which bounds, and the mempool taking vouched signatures as
verified (nothing else)."""

from __future__ import annotations

import pytest

from consensus.validators import ValidatorSet
from ledger.commands import Transfer
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxSignature
from node import attest
from node.attest import (
    THRESHOLDS,
    Attestations,
    Threshold,
    compute_batch_digest,
    compute_vouchers_needed,
    designated_verifiers,
    encode_bitmap,
    is_bitmap_for,
    is_vouched,
)
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
ONE = b"\x01"  # the bitmap "I believe the one tx of the batch"


def test_the_digest_binds_every_wire_hash_in_order() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    # over wire hashes: another signature on the same body is another batch
    ledger = Ledger()
    tx = _pay(ledger, 0)
    forged = _zero_signature(tx)
    assert forged.hash == tx.hash
    assert compute_batch_digest([tx.wire_hash]) != compute_batch_digest([forged.wire_hash])
    assert compute_batch_digest([a, b]) != compute_batch_digest([b, a])
    assert compute_batch_digest([a]) != compute_batch_digest([a, a])
    assert compute_batch_digest([a, b]) == compute_batch_digest([a, b])
    assert len(compute_batch_digest([])) == attest.DIGEST_SIZE


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10])
def test_k_verify_each_batch_with_the_origin(n: int, threshold: Threshold) -> None:
    validators, keys = _set(n)
    f = (n - 1) // 3
    k = compute_vouchers_needed(validators, threshold)
    # 2f+1 or f+1, but never the origin alone while there is another validator
    assert k == max(validators.quorum if threshold == "quorum" else f + 1, min(2, n))
    digest = b"\xab" * 32
    for index, origin in enumerate(keys):
        chosen = designated_verifiers(validators, origin, digest, threshold)
        # the origin verified it: k - 1 more, the ones after it in the set's order
        assert len(chosen) == k - 1 and origin not in chosen
        assert list(chosen) == [keys[(index + j) % n] for j in range(1, k)]
        assert is_vouched(validators, origin, digest, {origin, *chosen}, threshold)
        if chosen:  # one short
            assert not is_vouched(validators, origin, digest, {origin, *chosen[:-1]}, threshold)
        # validators that are not designated count for nothing
        others = set(keys) - set(chosen)
        assert not chosen or not is_vouched(validators, origin, digest, others, threshold)
    # from a node that is no validator: k validators, where the digest points
    chosen = designated_verifiers(validators, OTHER, digest, threshold)
    assert len(set(chosen)) == k and set(chosen) <= set(keys)
    assert chosen[0] == keys[int.from_bytes(digest[:8], "big") % n]
    assert is_vouched(validators, OTHER, digest, set(chosen), threshold)
    assert not is_vouched(validators, OTHER, digest, {OTHER, *chosen[1:]}, threshold)


def test_a_batch_is_vouched_by_its_origin_and_designated_verifiers_only() -> None:
    validators, keys = _set(7)  # f = 2; f+1 = 3 vouchers: the origin and the 2 after it
    book = Attestations("one_correct", max_waiting_txs=100)
    ledger = Ledger()
    tx = _pay(ledger, 0)
    digest = compute_batch_digest([tx.wire_hash])
    batch = book.wait(validators, keys[0], digest, [(tx, tx.encode())])
    assert batch is not None and set(batch.vouchers) == {keys[0]}  # the origin counts
    assert book.lookup(tx.hash) == (tx, tx.encode())
    # no validator, the origin again, one verifier twice, or a validator that is not
    # designated: still one short
    for voucher in (OTHER, keys[0], keys[1], keys[1], keys[5], keys[6]):
        assert book.vouch(validators, voucher, digest, ONE) == []
    assert not book.is_vouched(validators, batch) and OTHER not in batch.vouchers
    # the second designated verifier completes it, once
    assert book.vouch(validators, keys[2], digest, ONE) == [batch]
    assert book.is_vouched(validators, batch)
    assert book.vouch(validators, keys[3], digest, ONE) == []
    book.release(batch)
    assert book.lookup(tx.hash) is None and len(book) == 0 and book.waiting_txs == 0


def test_vouchers_count_against_the_set_of_the_moment() -> None:
    validators, keys = _set(4)
    book = Attestations("one_correct", max_waiting_txs=100)
    tx = _pay(Ledger(), 0)
    digest = compute_batch_digest([tx.wire_hash])
    batch = book.wait(validators, keys[0], digest, [(tx, tx.encode())])
    assert batch is not None
    assert book.vouch(validators, keys[1], digest, ONE) == [batch]
    # keys[1] left the set: keys[0]'s verifier is now keys[2], which said nothing
    smaller = ValidatorSet(tuple(v for v in validators.validators if v.public_key != keys[1]))
    assert book.designated(smaller, keys[0], digest) == (keys[2],)
    assert not book.is_vouched(smaller, batch)


def test_an_origin_that_is_no_validator_counts_for_nothing() -> None:
    validators, _ = _set(4)
    book = Attestations("one_correct", max_waiting_txs=100)
    tx = _pay(Ledger(), 0)
    digest = compute_batch_digest([tx.wire_hash])
    batch = book.wait(validators, OTHER, digest, [(tx, tx.encode())])
    assert batch is not None and batch.vouchers == {}
    first, second = book.designated(validators, OTHER, digest)
    assert book.vouch(validators, first, digest, ONE) == []
    assert book.vouch(validators, second, digest, ONE) == [batch]


def test_attestations_that_come_first_are_kept_bounded_per_validator() -> None:
    validators, keys = _set(4)
    book = Attestations("quorum", max_waiting_txs=100)  # the origin and the 2 after it
    tx = _pay(Ledger(), 0)
    digest = compute_batch_digest([tx.wire_hash])
    assert book.vouch(validators, OTHER, digest, ONE) == []  # not kept: no validator
    assert book.vouch(validators, keys[1], digest, ONE) == []  # kept for the batch
    assert book.vouch(validators, keys[2], digest, ONE) == []
    batch = book.wait(validators, keys[0], digest, [(tx, tx.encode())])
    assert batch is not None and set(batch.vouchers) == {keys[0], keys[1], keys[2]}
    assert book.is_vouched(validators, batch)
    # a flood of attestations for batches never sent keeps MAX_EARLY_PER_PEER of the
    # flooder's, and evicts no other validator's
    other = (1).to_bytes(32, "big")
    book.vouch(validators, keys[1], other, ONE)
    for i in range(attest.MAX_EARLY_PER_PEER + 50):
        book.vouch(validators, keys[3], (i + 2).to_bytes(32, "big"), ONE)
    assert len(book._early[keys[3]]) == attest.MAX_EARLY_PER_PEER
    assert other in book._early[keys[1]]


def test_waiting_is_bounded_in_all_and_per_origin() -> None:
    validators, keys = _set(4)
    ledger = Ledger()
    txs = [_pay(ledger, i) for i in range(3)]
    items = [(tx, tx.encode()) for tx in txs]
    book = Attestations("quorum", max_waiting_txs=16)  # 4 per origin
    first = compute_batch_digest([tx.wire_hash for tx in txs])
    assert book.wait(validators, keys[0], first, items) is not None
    assert book.is_held(keys[0], first) and not book.is_held(keys[1], first)
    assert book.wait(validators, keys[0], first, items) is None  # the same batch again
    second = compute_batch_digest([txs[0].wire_hash, txs[1].wire_hash])
    assert book.wait(validators, keys[0], second, items[:2]) is None  # 5 > 4 from one origin
    assert book.wait(validators, keys[1], second, items[:2]) is not None  # another origin
    assert book.waiting_txs == 5


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


def test_only_the_txs_every_counted_voucher_believes_are_trusted() -> None:
    validators, keys = _set(4)  # quorum: the origin and the 2 after it
    book = Attestations("quorum", max_waiting_txs=100)
    ledger = Ledger()
    txs = [_pay(ledger, i) for i in range(10)]
    items = [(tx, tx.encode()) for tx in txs]
    digest = compute_batch_digest([tx.wire_hash for tx in txs])
    batch = book.wait(validators, keys[0], digest, items)
    assert batch is not None
    assert book.trusted(validators, batch) == set()  # not vouched yet
    first = encode_bitmap([i != 3 for i in range(10)])
    second = encode_bitmap([i not in (3, 7) for i in range(10)])
    # malformed bitmaps are ignored: too short, or a bit past the batch's end
    assert book.vouch(validators, keys[1], digest, b"\xff") == []
    assert book.vouch(validators, keys[1], digest, b"\xff\x07") == []
    assert keys[1] not in batch.vouchers
    assert book.vouch(validators, keys[1], digest, first) == []
    # a second bitmap from the same voucher does not replace its first
    assert book.vouch(validators, keys[1], digest, encode_bitmap([True] * 10)) == []
    assert batch.vouchers[keys[1]] == first
    # a validator that is not designated believes everything: it counts for nothing
    assert book.vouch(validators, keys[3], digest, encode_bitmap([True] * 10)) == []
    assert book.vouch(validators, keys[2], digest, second) == [batch]
    trusted = book.trusted(validators, batch)
    assert trusted == {tx.wire_hash for i, tx in enumerate(txs) if i not in (3, 7)}


def test_another_peer_s_copy_does_not_displace_the_origin_s_batch() -> None:
    validators, keys = _set(4)
    book = Attestations("one_correct", max_waiting_txs=100)
    tx = _pay(Ledger(), 0)
    digest = compute_batch_digest([tx.wire_hash])
    again = SignedTx.decode(tx.encode())
    copy = book.wait(validators, keys[2], digest, [(again, tx.encode())])  # sent first
    honest = book.wait(validators, keys[0], digest, [(tx, tx.encode())])
    assert copy is not None and honest is not None
    assert book.is_held(keys[0], digest) and book.is_held(keys[2], digest)
    # keys[0]'s verifier (keys[1]) vouches: the honest one completes, the copy (whose
    # verifier is keys[3]) does not
    assert book.vouch(validators, keys[1], digest, ONE) == [honest]
    book.release(honest)
    assert book.is_held(keys[2], digest) and not book.is_held(keys[0], digest)
    assert book.lookup(tx.hash) == (again, tx.encode())  # the copy's, still held
    book.release(copy)
    assert len(book) == 0 and book.lookup(tx.hash) is None


def test_bitmaps() -> None:
    assert encode_bitmap([]) == b""
    assert encode_bitmap([True, False, True]) == b"\x05"
    assert encode_bitmap([True] * 9) == b"\xff\x01"
    assert is_bitmap_for(b"\x05", 3) and not is_bitmap_for(b"\x0d", 3)
    assert is_bitmap_for(b"\xff", 8) and not is_bitmap_for(b"\xff", 9)
    assert is_bitmap_for(b"", 0) and not is_bitmap_for(b"\x00", 0)
