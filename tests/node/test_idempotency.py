"""The back office's idempotency records (`node.idempotency`) on the memory store."""

from __future__ import annotations

import pytest

from ledger.schema import IDEMPOTENCY_ORDER_PREFIX, IDEMPOTENCY_PREFIX
from ledger.store.memory import MemoryStore
from node.idempotency import IdempotencyLog, Record, is_idempotency_key

SCOPE = "admin@aclb"


def _put(log: IdempotencyLog, key: str, n: int = 0) -> Record:
    return log.put(SCOPE, key, bytes([n]) * 32, bytes([n + 1]) * 32, b"raw-%d" % n)


def _count(store: MemoryStore, prefix: bytes) -> int:
    return sum(1 for _ in store.iterate(prefix))


def test_basic() -> None:
    store = MemoryStore()
    log = IdempotencyLog(store)
    record = _put(log, "order-1", 7)
    assert log.get(SCOPE, "order-1") == record
    assert record.raw_tx == b"raw-7" and record.tx_hash == b"\x08" * 32
    assert log.get(SCOPE, "order-2") is None
    assert log.get("admin@aba", "order-1") is None


def test_survives_reopen() -> None:
    store = MemoryStore()
    _put(IdempotencyLog(store), "a", 1)
    reopened = IdempotencyLog(store)
    assert reopened.get(SCOPE, "a") is not None
    assert _put(reopened, "b", 2).seq == 1


def test_scopes_do_not_mix() -> None:
    log = IdempotencyLog(MemoryStore())
    log.put("admin@ab", "cx", b"\1" * 32, b"\2" * 32, b"")
    assert log.get("admin@abc", "x") is None


def test_flood_keeps_the_most_recent() -> None:
    store = MemoryStore()
    log = IdempotencyLog(store, capacity=50)
    for n in range(500):
        _put(log, f"key-{n}", n % 200)
    assert _count(store, IDEMPOTENCY_PREFIX) == 50
    assert _count(store, IDEMPOTENCY_ORDER_PREFIX) == 50
    assert log.get(SCOPE, "key-449") is None
    assert all(log.get(SCOPE, f"key-{n}") is not None for n in range(450, 500))
    # The bound holds across a reopen too.
    reopened = IdempotencyLog(store, capacity=50)
    _put(reopened, "late", 1)
    assert _count(store, IDEMPOTENCY_PREFIX) == 50
    assert reopened.get(SCOPE, "key-450") is None


def test_discard_frees_the_key() -> None:
    store = MemoryStore()
    log = IdempotencyLog(store, capacity=3)
    for key in ("a", "b", "c"):
        _put(log, key)
    log.discard(SCOPE, "a")
    log.discard(SCOPE, "never")
    assert log.get(SCOPE, "a") is None
    for key in ("d", "e"):
        _put(log, key)
    assert [log.get(SCOPE, k) is not None for k in "abcde"] == [False, False, True, True, True]
    assert _count(store, IDEMPOTENCY_PREFIX) == 3


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a", True),
        ("x" * 255, True),
        ("order 12/7:~!", True),
        ("", False),
        ("x" * 256, False),
        ("caf\u00e9", False),
        ("tab\there", False),
        ("\udcff", False),
    ],
)
def test_key_format(text: str, ok: bool) -> None:
    assert is_idempotency_key(text) is ok


def test_invalid_capacity() -> None:
    with pytest.raises(ValueError):
        IdempotencyLog(MemoryStore(), capacity=0)
