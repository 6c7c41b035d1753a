"""Found by the nemesis soak (full disk): a tx whose persisting failed was answered
`400 store_error` yet stayed in the in-memory mempool, so the node later proposed it and
it committed, a "definitely failed" tx that was applied. Admission is now all or
nothing: a store failure leaves nothing behind and answers 503 (retry; the client
cannot tell more)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ledger import schema
from ledger.commands import Transfer
from ledger.errors import StoreError
from node.mempool import Mempool, MempoolError
from tests.ledger.helpers import CHAIN_ID, Ledger, make_tx


def _mempool(ledger: Ledger) -> Mempool:
    return Mempool(
        ledger.store, CHAIN_ID, capacity=100, nonce_window=5, tx_ttl_ms=3_600_000,
        max_clock_skew_ms=60_000,
    )  # fmt: skip


def _pay(ledger: Ledger, nonce: int) -> Any:
    cmd = Transfer("alice@aclb", "carol@wing", "KHR", 10)
    return make_tx("alice@aclb", nonce, cmd, created_at=ledger.time_ms)


@contextmanager
def _full_disk(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = ledger.store.atomic_batch

    @contextmanager
    def failing(sync: bool = True) -> Iterator[Any]:
        with real(sync) as batch:
            yield batch
            raise StoreError("write to chain.db failed: No space left on device")

    monkeypatch.setattr(ledger.store, "atomic_batch", failing)
    yield
    monkeypatch.setattr(ledger.store, "atomic_batch", real)


def test_a_tx_that_could_not_be_persisted_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger()
    mempool = _mempool(ledger)
    first = _pay(ledger, 0)
    mempool.add(first, first.encode(), ledger.time_ms)
    tx, queued = _pay(ledger, 1), _pay(ledger, 3)
    with _full_disk(ledger, monkeypatch):
        with pytest.raises(MempoolError) as caught:
            mempool.add(tx, tx.encode(), ledger.time_ms)
        # a server-side failure, not a refusal of the tx
        assert caught.value.code == "store_error" and caught.value.status == 503
        outcomes = mempool.add_many([(queued, queued.encode())], ledger.time_ms)
        assert [error.code if error else None for _, error in outcomes] == ["store_error"]
    assert tx.hash not in mempool and queued.hash not in mempool
    assert mempool.pending_nonces("alice@aclb") == [0]
    assert mempool.executable_count == 1 and mempool.queued_count == 0
    assert [c.hash for c in mempool.candidates(10, 1 << 20)] == [first.hash]
    assert ledger.store.get(schema.make_mempool_key(tx.hash)) is None
    # space again: the same tx is admitted as if nothing had happened
    assert mempool.add(tx, tx.encode(), ledger.time_ms) == tx.hash
    assert mempool.pending_nonces("alice@aclb") == [0, 1]
