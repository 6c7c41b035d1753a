"""Mempool admission, persistence and eviction, on an in-memory ledger."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest

from ledger import schema
from ledger.commands import Freeze, Transfer
from ledger.crypto import PrivateKey
from ledger.transition import BlockContext
from ledger.tx import SignedTx, TxSignature, add_signature
from node import mempool as mempool_module
from node.mempool import Mempool, MempoolError, VerifiedCache
from tests.ledger.helpers import CHAIN_ID, GENESIS_TIME, Ledger, make_key, make_tx

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


def test_gossiped_txs_are_kept_in_memory_only() -> None:
    """A gossiped tx is admitted like any other but never written: the node its client
    reached persisted it. Committing it deletes nothing it did not write."""
    ledger = Ledger()
    mempool = _mempool(ledger)
    own, gossiped = _pay(ledger, 0), _pay(ledger, 1)
    mempool.add(own, own.encode(), ledger.time_ms)
    [(tx_hash, error)] = mempool.add_many(
        [(gossiped, gossiped.encode())], ledger.time_ms, persist=False
    )
    assert error is None and tx_hash in mempool
    assert mempool.pending_nonces("alice@aclb") == [0, 1] and mempool.executable_count == 2
    assert ledger.store.get(schema.make_mempool_key(own.hash)) == own.encode()
    assert ledger.store.get(schema.make_mempool_key(gossiped.hash)) is None
    restarted = _mempool(ledger)
    assert restarted.load(ledger.time_ms) == 1 and own.hash in restarted
    assert gossiped.hash not in restarted


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


def test_admission_reads_each_signer_once_per_height_and_sees_every_commit() -> None:
    """Admission keeps the accounts it read until the next commit (`update`): the same
    signer's txs read the store once, and a commit that froze the signer or used a
    nonce is seen by the next admission."""
    ledger = Ledger()
    mempool = _mempool(ledger)
    reads: list[bytes] = []
    get = ledger.store.get

    def counted(key: bytes) -> bytes | None:
        reads.append(key)
        return get(key)

    ledger.store.get = counted  # type: ignore[method-assign]
    txs = [_pay(ledger, n) for n in range(3)]
    mempool.add_many([(tx, tx.encode()) for tx in txs], ledger.time_ms)
    assert reads.count(schema.make_account_key("alice@aclb")) == 1
    # a block uses nonce 0 and freezes alice
    freeze = ledger.sign("admin@nbc", Freeze("alice@aclb"))
    ledger.apply([txs[0], freeze])
    ctx = BlockContext(CHAIN_ID, ledger.height + 1, ledger.time_ms)
    mempool.update([txs[0].hash], {"alice@aclb", "admin@nbc"}, ctx)
    assert _refused(mempool, _pay(ledger, 3), ledger.time_ms) == "account_frozen"
    assert _refused(mempool, _pay(ledger, 0, amount=11), ledger.time_ms) == "bad_nonce"


def test_the_account_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mempool_module, "ACCOUNT_CACHE_SIZE", 3)
    ledger = Ledger()
    mempool = _mempool(ledger)
    for n in range(10):
        tx = make_tx(f"nobody{n}@aclb", 0, Transfer(f"nobody{n}@aclb", "carol@wing", "KHR", 1))
        assert _refused(mempool, tx, ledger.time_ms) == "unknown_account"
        assert len(mempool._accounts) <= 3


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


# The executable/queued split: txs behind a nonce gap wait out of blocks.

SIGNERS = ("alice@aclb", "carol@wing", "admin@aclb", "admin@wing", "bob@aclb")  # bob: no KHR


def _split_mempool(
    ledger: Ledger,
    capacity: int = 1_000,
    window: int = 100,
    per_signer: int = 64,
    queued: int = 10_000,
) -> Mempool:
    return Mempool(
        ledger.store,
        CHAIN_ID,
        capacity=capacity,
        nonce_window=window,
        tx_ttl_ms=TTL_MS,
        max_clock_skew_ms=SKEW_MS,
        max_queued_per_signer=per_signer,
        max_queued=queued,
    )


def _tx(signer: str, nonce: int, amount: int = 1, created_at: int = GENESIS_TIME) -> SignedTx:
    """The same tx for the same arguments, so that a test's block holds the mempool's."""
    to = "carol@wing" if signer != "carol@wing" else "alice@aclb"
    return make_tx(signer, nonce, Transfer(signer, to, "KHR", amount), created_at=created_at)


def _admit(mempool: Mempool, ledger: Ledger, signer: str, *nonces: int) -> None:
    for nonce in nonces:
        tx = _tx(signer, nonce)
        mempool.add(tx, tx.encode(), ledger.time_ms)


def _commit(mempool: Mempool, ledger: Ledger, txs: list[SignedTx]) -> list[tuple[bytes, str]]:
    """Commit one block of `txs` (those that fail are left out), then update as the
    engine does."""
    result = ledger.apply(txs)
    included = [tx for tx, r in zip(txs, result.results, strict=True) if r.code is None]
    ctx = BlockContext(CHAIN_ID, ledger.height + 1, ledger.time_ms)
    return mempool.update([tx.hash for tx in included], {tx.body.signer for tx in included}, ctx)


def _candidate_nonces(mempool: Mempool, max_txs: int = 10_000) -> list[tuple[str, int]]:
    return [(tx.body.signer, tx.body.nonce) for tx in mempool.candidates(max_txs, 1 << 30)]


def _assert_split_matches_naive(mempool: Mempool, ledger: Ledger) -> None:
    """The incremental split against one computed from scratch: the run of pending
    nonces from each signer's committed one is executable, the rest queued."""
    executable_total = 0
    expected_candidates = set()
    for signer in SIGNERS:
        pending = set(mempool.pending_nonces(signer))
        nonce = ledger.nonce(signer)
        run = []
        while nonce in pending:
            run.append(nonce)
            nonce += 1
        assert mempool.nonce_split(signer) == (run, sorted(pending - set(run))), signer
        executable_total += len(run)
        expected_candidates |= {(signer, n) for n in run}
    assert mempool.executable_count == executable_total
    assert mempool.queued_count == len(mempool) - executable_total
    assert mempool.has_executable() == (executable_total > 0)
    candidates = _candidate_nonces(mempool)
    assert set(candidates) == expected_candidates and len(candidates) == executable_total
    for signer in SIGNERS:
        mine = [n for s, n in candidates if s == signer]
        assert mine == sorted(mine)


def _step_add(*nonces: int) -> Callable[[Mempool, Ledger], object]:
    return lambda mempool, ledger: _admit(mempool, ledger, "alice@aclb", *nonces)


def _step_commit(*nonces: int, amount: int = 1) -> Callable[[Mempool, Ledger], object]:
    return lambda mempool, ledger: _commit(
        mempool, ledger, [_tx("alice@aclb", n, amount) for n in nonces]
    )


def _step_reject(nonce: int) -> Callable[[Mempool, Ledger], object]:
    return lambda mempool, ledger: mempool.reject(_tx("alice@aclb", nonce).hash, "test")


# (step, alice's expected (executable, queued) nonces after it)
GAP_STEPS = [
    (_step_add(1), ([], [1])),  # a gap: queued, no candidate, nothing to execute
    (_step_add(3), ([], [1, 3])),
    (_step_add(0), ([0, 1], [3])),  # filling the gap promotes what follows it
    (_step_add(2), ([0, 1, 2, 3], [])),
    (_step_commit(0, 1), ([2, 3], [])),  # a commit advances the run
    (_step_add(6), ([2, 3], [6])),
    (_step_commit(2, 3, 4, 5), ([6], [])),  # 4 and 5 came from elsewhere: 6 is promoted
    (_step_add(8, 9), ([6], [8, 9])),
    (_step_commit(6, 7), ([8, 9], [])),
    # another tx took nonce 8: ours is evicted as bad_nonce, 9 stays executable
    (_step_commit(8, amount=2), ([9], [])),
    (_step_add(10, 11, 12), ([9, 10, 11, 12], [])),
    (_step_reject(10), ([9], [11, 12])),  # rejected: its successors wait behind the gap
    (_step_add(10), ([9, 10, 11, 12], [])),  # resubmitted: promoted again
    (_step_reject(9), ([], [10, 11, 12])),
    (_step_commit(9), ([10, 11, 12], [])),
]


def test_split_steps() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger)
    assert not mempool.has_executable() and mempool.executable_count == 0
    for number, (step, expected) in enumerate(GAP_STEPS):
        step(mempool, ledger)
        assert mempool.nonce_split("alice@aclb") == expected, number
        executable, queued = expected
        assert _candidate_nonces(mempool) == [("alice@aclb", n) for n in executable], number
        assert mempool.has_executable() == bool(executable), number
        assert (mempool.executable_count, mempool.queued_count) == (len(executable), len(queued))
        assert len(mempool) == len(executable) + len(queued)
        _assert_split_matches_naive(mempool, ledger)


def test_commit_evicts_a_replaced_nonce_and_records_it() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger)
    _admit(mempool, ledger, "alice@aclb", 0, 1)
    evicted = _commit(mempool, ledger, [_tx("alice@aclb", 0, amount=2)])
    assert evicted == [(_tx("alice@aclb", 0).hash, "bad_nonce")]
    assert mempool.nonce_split("alice@aclb") == ([1], [])


def test_failed_head_demotes_its_run_and_trims_it_to_the_cap() -> None:
    # bob has no KHR: his head fails on re-check; 1..4 then wait behind a gap, and the
    # highest two go so that he keeps at most 2 queued
    ledger = Ledger()
    mempool = _split_mempool(ledger, per_signer=2)
    _admit(mempool, ledger, "bob@aclb", 0, 1, 2, 3, 4)
    _admit(mempool, ledger, "alice@aclb", 0)
    assert mempool.nonce_split("bob@aclb") == ([0, 1, 2, 3, 4], [])
    evicted = _commit(mempool, ledger, [_tx("alice@aclb", 0)])
    assert evicted == [
        (_tx("bob@aclb", 0).hash, "insufficient_funds"),
        (_tx("bob@aclb", 4).hash, "queue_full"),
        (_tx("bob@aclb", 3).hash, "queue_full"),
    ]
    assert mempool.nonce_split("bob@aclb") == ([], [1, 2])
    assert not mempool.has_executable()
    assert mempool.rejection_of(_tx("bob@aclb", 4).hash) == "queue_full"
    assert ledger.store.get(schema.make_mempool_key(_tx("bob@aclb", 4).hash)) is None


def test_reject_trims_demoted_txs_to_the_cap() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger, per_signer=1)
    _admit(mempool, ledger, "alice@aclb", 0, 1, 2)
    mempool.reject(_tx("alice@aclb", 0).hash, "insufficient_funds")
    assert mempool.nonce_split("alice@aclb") == ([], [1])
    assert mempool.rejection_of(_tx("alice@aclb", 2).hash) == "queue_full"
    _assert_split_matches_naive(mempool, ledger)


def test_recheck_window_rotates_over_ready_signers(monkeypatch: pytest.MonkeyPatch) -> None:
    # one signer re-checked per block: bob's failing head is found on the third
    monkeypatch.setattr(mempool_module, "RECHECK_WINDOW", 1)
    ledger = Ledger()
    mempool = _split_mempool(ledger)
    for signer in ("alice@aclb", "carol@wing", "bob@aclb"):
        _admit(mempool, ledger, signer, 0)
    _admit(mempool, ledger, "admin@aclb", 1)  # queued only: nothing to re-check
    evictions = [_commit(mempool, ledger, []) for _ in range(3)]
    assert evictions == [[], [], [(_tx("bob@aclb", 0).hash, "insufficient_funds")]]


def test_invalid_queue_full() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger, per_signer=2)
    _admit(mempool, ledger, "alice@aclb", 1, 2)
    third = _tx("alice@aclb", 3)
    with pytest.raises(MempoolError) as caught:
        mempool.add(third, third.encode(), ledger.time_ms)
    assert (caught.value.code, caught.value.status) == ("queue_full", 429)
    assert "nonce 0" in caught.value.message
    # the tx that fills the gap is never refused for the queue, and makes room in it
    _admit(mempool, ledger, "alice@aclb", 0, 3)
    assert mempool.nonce_split("alice@aclb") == ([0, 1, 2, 3], [])
    # other signers have queues of their own
    _admit(mempool, ledger, "carol@wing", 1, 2)


def test_invalid_mempool_queue_full() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger, per_signer=2, queued=3)
    _admit(mempool, ledger, "alice@aclb", 1, 2)
    _admit(mempool, ledger, "carol@wing", 1)
    assert _refused(mempool, _tx("carol@wing", 2), ledger.time_ms) == "mempool_queue_full"
    assert _refused(mempool, _tx("admin@aclb", 1), ledger.time_ms) == "mempool_queue_full"
    _admit(mempool, ledger, "admin@aclb", 0)  # executable: admitted
    assert mempool.queued_count == 3 and mempool.executable_count == 1


def test_candidates_are_fair_across_signers() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger, capacity=6_000, window=6_000)
    busy = [_tx("alice@aclb", n) for n in range(5_000)]
    mempool.add_many([(tx, tx.encode()) for tx in busy], ledger.time_ms)
    _admit(mempool, ledger, "carol@wing", 0)
    block = _candidate_nonces(mempool, max_txs=100)
    assert len(block) == 100
    assert block[:2] == [("alice@aclb", 0), ("carol@wing", 0)]
    assert block[2:] == [("alice@aclb", n) for n in range(1, 99)]
    # the byte limit stops the block too
    size = sum(len(tx.encode()) for tx in busy[:10])
    assert len(list(mempool.candidates(100, size))) == 10


def test_candidates_round_robin_and_a_served_signer_goes_last() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger)
    _admit(mempool, ledger, "alice@aclb", 0, 1, 2)
    _admit(mempool, ledger, "carol@wing", 0)
    _admit(mempool, ledger, "admin@aclb", 0, 1)
    assert _candidate_nonces(mempool) == [
        ("alice@aclb", 0),
        ("carol@wing", 0),
        ("admin@aclb", 0),
        ("alice@aclb", 1),
        ("admin@aclb", 1),
        ("alice@aclb", 2),
    ]
    _commit(mempool, ledger, [_tx("alice@aclb", 0)])
    assert _candidate_nonces(mempool, max_txs=3) == [
        ("carol@wing", 0),
        ("admin@aclb", 0),
        ("alice@aclb", 1),
    ]


def test_queued_txs_expire() -> None:
    ledger = Ledger()
    mempool = _split_mempool(ledger, per_signer=2)
    later = GENESIS_TIME + 600_000
    run = [_tx("alice@aclb", n, created_at=later) for n in range(5)]
    run[1] = _tx("alice@aclb", 1)  # created earlier than the rest
    queued = _tx("carol@wing", 1)
    mempool.add_many([(tx, tx.encode()) for tx in (*run, queued)], later)
    assert mempool.nonce_split("alice@aclb") == ([0, 1, 2, 3, 4], [])
    ctx = BlockContext(CHAIN_ID, ledger.height + 1, GENESIS_TIME + TTL_MS + 1)
    evicted = mempool.update([], set(), ctx)
    # nonce 1 leaves a gap: alice's later nonces wait for a new one, as many as her
    # queue holds
    assert sorted(evicted) == sorted(
        [(run[1].hash, "expired"), (queued.hash, "expired"), (run[4].hash, "queue_full")]
    )
    assert mempool.nonce_split("alice@aclb") == ([0], [2, 3])
    assert mempool.queued_count == 2 and mempool.executable_count == 1
    assert ledger.store.get(schema.make_mempool_key(queued.hash)) is None


def test_load_rebuilds_the_split() -> None:
    # persisted txs come back in key (hash) order: the restart must not take a run for
    # a gap, even with a queue cap smaller than the run
    ledger = Ledger()
    mempool = _split_mempool(ledger)
    _admit(mempool, ledger, "alice@aclb", *range(10), 12)
    _admit(mempool, ledger, "carol@wing", 1)
    restarted = _split_mempool(ledger, per_signer=1)
    assert restarted.load(ledger.time_ms) == 12
    assert restarted.nonce_split("alice@aclb") == (list(range(10)), [12])
    assert restarted.nonce_split("carol@wing") == ([], [1])
    assert restarted.executable_count == 10 and restarted.queued_count == 2
    _assert_split_matches_naive(restarted, ledger)


def test_split_stays_right_on_a_random_schedule() -> None:
    """Admissions, blocks (with txs that fail and txs from elsewhere), rejections and
    expiry in a seeded random order; after each, the split equals the naive one."""
    rng = random.Random(11)
    ledger = Ledger()
    mempool = _split_mempool(ledger, window=12, per_signer=4, queued=12)
    for _ in range(400):
        roll, signer = rng.random(), rng.choice(SIGNERS)
        if roll < 0.55:
            _random_admission(rng, mempool, ledger, signer)
        elif roll < 0.85:
            block = list(mempool.candidates(rng.randrange(1, 8), 1 << 30))
            if rng.random() < 0.2:  # a tx this node never had takes a nonce
                block.insert(0, _tx(signer, ledger.nonce(signer), amount=3))
            _commit(mempool, ledger, block)
        elif roll < 0.95:
            nonces = mempool.pending_nonces(signer)
            if nonces:
                mempool.reject(_any_hash(mempool, signer, rng.choice(nonces)), "test")
        else:
            ledger.time_ms += TTL_MS // 4
            _commit(mempool, ledger, [])
        _assert_split_matches_naive(mempool, ledger)
        assert all(len(mempool.nonce_split(s)[1]) <= 4 for s in SIGNERS)
        assert mempool.queued_count <= 12


def _random_admission(rng: random.Random, mempool: Mempool, ledger: Ledger, signer: str) -> None:
    """Mostly the signer's first missing nonce (runs grow, gaps fill), else any in reach."""
    nonce = ledger.nonce(signer) + rng.randrange(8)
    if rng.random() < 0.6:
        pending = set(mempool.pending_nonces(signer))
        nonce = ledger.nonce(signer)
        while nonce in pending:
            nonce += 1
    created = ledger.time_ms - rng.randrange(TTL_MS // 2)
    tx = _tx(signer, nonce, amount=rng.choice((1, 1, 2)), created_at=created)
    mempool.add_many([(tx, tx.encode())], ledger.time_ms)


def _any_hash(mempool: Mempool, signer: str, nonce: int) -> bytes:
    pending = (SignedTx.decode(raw) for raw in mempool.all_raw())
    return next(tx.hash for tx in pending if (tx.body.signer, tx.body.nonce) == (signer, nonce))


def test_rejection_records_are_bounded_oldest_first() -> None:
    """A customer whose txs keep failing cannot fill the node's disk with rejections."""
    _schema = schema
    store = Ledger().store
    pool = Mempool(
        store,
        CHAIN_ID,
        capacity=100,
        nonce_window=10,
        tx_ttl_ms=3_600_000,
        max_clock_skew_ms=60_000,
        rejected_capacity=3,
    )
    hashes = [bytes([i]) * 32 for i in range(5)]
    for height, tx_hash in enumerate(hashes):
        with store.atomic_batch() as batch:
            pool._persist_rejection(batch, tx_hash, "insufficient_funds\nshort", height)
    kept = [key[-32:] for key, _ in store.iterate(_schema.NODE_REJECTED_PREFIX)]
    assert sorted(kept) == sorted(hashes[2:])
    assert len(list(store.iterate(_schema.NODE_REJECTED_ORDER_PREFIX))) == 3
    # the per-height index goes with its records
    assert len(list(store.iterate(_schema.NODE_REJECTED_HEIGHT_PREFIX))) == 3
    assert pool.rejections_at(1, 10) == []
    assert pool.rejections_at(4, 10) == [(hashes[4], "insufficient_funds", "short")]
    # a restarted node goes on from where the records end
    again = Mempool(
        store,
        CHAIN_ID,
        capacity=100,
        nonce_window=10,
        tx_ttl_ms=3_600_000,
        max_clock_skew_ms=60_000,
        rejected_capacity=3,
    )
    with store.atomic_batch() as batch:
        again._persist_rejection(batch, b"\x09" * 32, "expired", 9)
    kept = {key[-32:] for key, _ in store.iterate(_schema.NODE_REJECTED_PREFIX)}
    assert kept == {hashes[3], hashes[4], b"\x09" * 32}
    assert again.rejection_of(b"\x09" * 32) == "expired" and again.rejection_of(hashes[2]) is None
