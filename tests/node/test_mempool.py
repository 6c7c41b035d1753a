"""Mempool admission, persistence and eviction, on an in-memory ledger."""

from __future__ import annotations

import struct

import pytest

from ledger import schema
from ledger.commands import Freeze, Transfer
from ledger.crypto import PrivateKey
from ledger.transition import BlockContext
from ledger.tx import SignedTx, TxSignature, add_signature
from node.mempool import Mempool, MempoolError, VerifiedCache
from tests.ledger.helpers import CHAIN_ID, Ledger, make_key, make_tx

TTL_MS = 3_600_000
SKEW_MS = 60_000


def _mempool(ledger: Ledger, capacity: int = 100, window: int = 5) -> Mempool:
    return Mempool(
        ledger.store,
        CHAIN_ID,
        capacity=capacity,
        nonce_window=window,
        tx_ttl_ms=TTL_MS,
        max_clock_skew_ms=SKEW_MS,
    )


def _pay(
    ledger: Ledger,
    nonce: int,
    amount: int = 10,
    chain_id: str = CHAIN_ID,
    key: PrivateKey | None = None,
) -> SignedTx:
    cmd = Transfer("alice@aclb", "carol@wing", "KHR", amount)
    return make_tx("alice@aclb", nonce, cmd, created_at=ledger.time_ms, chain_id=chain_id, key=key)


def _refused(mempool: Mempool, tx: SignedTx, now_ms: int) -> str:
    with pytest.raises(MempoolError) as caught:
        mempool.add(tx, tx.encode(), now_ms)
    assert 400 <= caught.value.status < 500
    return caught.value.code


def test_basic_admits_and_persists() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    tx = _pay(ledger, 0)
    assert mempool.add(tx, tx.encode(), ledger.time_ms) == tx.hash
    assert tx.hash in mempool and mempool.pending_nonces("alice@aclb") == [0]
    assert ledger.store.get(schema.make_mempool_key(tx.hash)) == tx.encode()
    # a node restarting on the same store gets it back
    restarted = _mempool(ledger)
    assert restarted.load(ledger.time_ms) == 1 and tx.hash in restarted


def test_invalid_duplicate() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    tx = _pay(ledger, 0)
    mempool.add(tx, tx.encode(), ledger.time_ms)
    assert _refused(mempool, tx, ledger.time_ms) == "duplicate"


def test_invalid_wrong_chain() -> None:
    ledger = Ledger()
    assert _refused(_mempool(ledger), _pay(ledger, 0, chain_id="other"), ledger.time_ms) == (
        "wrong_chain"
    )


def test_invalid_unknown_signer() -> None:
    ledger = Ledger()
    tx = make_tx("nobody@aclb", 0, Transfer("nobody@aclb", "carol@wing", "KHR", 1))
    assert _refused(_mempool(ledger), tx, ledger.time_ms) == "unknown_account"


def test_invalid_used_nonce_and_replay() -> None:
    ledger = Ledger()
    ledger.apply_tx(_pay(ledger, 0))
    mempool = _mempool(ledger)
    assert _refused(mempool, _pay(ledger, 0, amount=11), ledger.time_ms) == "bad_nonce"
    committed = _pay(ledger, 0)
    location = struct.pack(">QI", 1, 0)
    ledger.store.put(schema.make_tx_index_key(committed.hash), location)
    assert _refused(mempool, committed, ledger.time_ms) == "already_committed"


def test_invalid_nonce_too_far_ahead() -> None:
    ledger = Ledger()
    assert _refused(_mempool(ledger, window=5), _pay(ledger, 5), ledger.time_ms) == "bad_nonce"


def test_invalid_nonce_taken() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    first = _pay(ledger, 0)
    mempool.add(first, first.encode(), ledger.time_ms)
    assert _refused(mempool, _pay(ledger, 0, amount=99), ledger.time_ms) == "nonce_taken"


def test_invalid_expired_and_future() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    tx = _pay(ledger, 0)
    assert _refused(mempool, tx, ledger.time_ms + TTL_MS + 1) == "expired"
    assert _refused(mempool, tx, ledger.time_ms - SKEW_MS - 1) == "future_tx"


def test_invalid_signature_of_another_key() -> None:
    ledger = Ledger()
    forged = _pay(ledger, 0, key=make_key("mallory"))
    assert _refused(_mempool(ledger), forged, ledger.time_ms) == "bad_signature"


def test_invalid_extra_signature_by_another_key() -> None:
    # alice signs, and mallory adds a valid signature of her own: not alice's tx any more
    ledger = Ledger()
    extra = add_signature(_pay(ledger, 0), make_key("mallory"))
    assert _refused(_mempool(ledger), extra, ledger.time_ms) == "bad_signature"


def test_invalid_unsigned() -> None:
    ledger = Ledger()
    unsigned = SignedTx(_pay(ledger, 0).body, ())
    assert _refused(_mempool(ledger), unsigned, ledger.time_ms) == "bad_signature"


def test_invalid_poisoned_cache_never_admits_a_forged_signature() -> None:
    # A body "signer = alice" signed by a throw-away key is verified (as a junk proposal's
    # block would have it verified); alice's key with 64 zero bytes must still be refused.
    ledger = Ledger()
    mempool = _mempool(ledger)
    evil = _pay(ledger, 0, amount=40_000, key=make_key("mallory"))
    assert mempool.verified.verify(evil)
    alice = make_key("alice@aclb").public_key
    forged = SignedTx(evil.body, (TxSignature(alice, bytes(64)),))
    assert forged.hash == evil.hash and forged.wire_hash != evil.wire_hash
    assert _refused(mempool, forged, ledger.time_ms) == "bad_signature"
    # nor with the throw-away key's valid signature riding along
    riding = SignedTx(evil.body, (TxSignature(alice, bytes(64)), evil.signatures[0]))
    assert _refused(mempool, riding, ledger.time_ms) == "bad_signature"
    assert len(mempool) == 0
    # alice's own signature of the same body is admitted
    genuine = _pay(ledger, 0, amount=40_000)
    assert mempool.add(genuine, genuine.encode(), ledger.time_ms) == evil.hash


def test_verified_cache_is_keyed_by_wire_hash_and_bounded() -> None:
    ledger = Ledger()
    cache = VerifiedCache(capacity=3)
    txs = [_pay(ledger, n) for n in range(5)]
    for tx in txs:
        assert cache.verify(tx)
    assert len(cache) == 3
    assert [tx.wire_hash in cache for tx in txs] == [False, False, True, True, True]
    assert txs[4].hash not in cache
    forged = SignedTx(txs[4].body, (TxSignature(txs[4].signatures[0].public_key, bytes(64)),))
    assert not cache.verify(forged) and forged.wire_hash not in cache


def test_invalid_frozen_signer() -> None:
    ledger = Ledger()
    ledger.apply_tx(ledger.sign("admin@nbc", Freeze("alice@aclb")))
    assert _refused(_mempool(ledger), _pay(ledger, 0), ledger.time_ms) == "account_frozen"


def test_invalid_full() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger, capacity=2)
    txs = [_pay(ledger, n) for n in range(3)]
    outcomes = mempool.add_many([(tx, tx.encode()) for tx in txs], ledger.time_ms)
    assert [error.code if error else None for _, error in outcomes] == [None, None, "mempool_full"]


def test_update_drops_included_and_rejects_what_can_no_longer_apply() -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    rejected: list[tuple[bytes, str]] = []
    mempool.on_evict = lambda tx_hash, code: rejected.append((tx_hash, code))
    included, overdraft = _pay(ledger, 0), _pay(ledger, 1, amount=10**9)
    mempool.add_many([(tx, tx.encode()) for tx in (included, overdraft)], ledger.time_ms)
    ledger.apply_tx(included)
    ctx = BlockContext(CHAIN_ID, ledger.height + 1, ledger.time_ms)
    evicted = mempool.update([included.hash], {"alice@aclb"}, ctx)
    assert evicted == [(overdraft.hash, "insufficient_funds")] == rejected
    assert len(mempool) == 0
    assert mempool.rejection_of(overdraft.hash) == "insufficient_funds"
    assert ledger.store.get(schema.make_mempool_key(overdraft.hash)) is None
