"""Idempotency keys of the back office: which tx a client's `Idempotency-Key` produced.

A retry carrying the key it used the first time gets the first tx back instead of paying
again, across restarts. Records live in the node's store (node-local, never hashed); only
the most recent `capacity` keys are kept (oldest evicted first), so the store holds at most
`capacity` records of at most MAX_TX_BYTES plus a few hundred bytes each. A record is
written, synced, before its tx is submitted: a crash in between leaves a record whose tx a
retry submits again (the same signed tx, so it can pay at most once), never a paid tx
without a record.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from ledger.kv import KeyValueStore
from ledger.schema import (
    IDEMPOTENCY_ORDER_PREFIX,
    decode_height,
    make_idempotency_key,
    make_idempotency_order_key,
)

MAX_KEYS = 100_000
_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
_HEADER = struct.Struct(">Q32s32s")


def is_idempotency_key(text: str) -> bool:
    """Printable ASCII, 1 to 255 characters (what the header may carry)."""
    return _KEY_RE.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Record:
    """What one key produced: `digest` is the sha256 of the canonical request it came with."""

    seq: int
    digest: bytes
    tx_hash: bytes
    raw_tx: bytes

    def encode(self) -> bytes:
        return _HEADER.pack(self.seq, self.digest, self.tx_hash) + self.raw_tx

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        seq, digest, tx_hash = _HEADER.unpack_from(raw)
        return cls(seq, digest, tx_hash, raw[_HEADER.size :])


class IdempotencyLog:
    """Key -> `Record` in the store, bounded to the `capacity` most recently written keys."""

    def __init__(self, store: KeyValueStore, capacity: int = MAX_KEYS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.store = store
        self.capacity = capacity
        oldest = next(store.iterate(IDEMPOTENCY_ORDER_PREFIX), None)
        newest = next(store.iterate(IDEMPOTENCY_ORDER_PREFIX, reverse=True), None)
        self._first = 0 if oldest is None else _order_seq(oldest[0])
        self._next = 0 if newest is None else _order_seq(newest[0]) + 1

    def get(self, scope: str, key: str) -> Record | None:
        raw = self.store.get(make_idempotency_key(scope, key))
        return None if raw is None else Record.decode(raw)

    def put(self, scope: str, key: str, digest: bytes, tx_hash: bytes, raw_tx: bytes) -> Record:
        """Record a new key (synced), evicting the oldest beyond `capacity` in the same batch."""
        record = Record(self._next, digest, tx_hash, raw_tx)
        record_key = make_idempotency_key(scope, key)
        first = self._first
        with self.store.atomic_batch() as batch:
            batch.put(record_key, record.encode())
            batch.put(make_idempotency_order_key(record.seq), record_key)
            while record.seq + 1 - first > self.capacity:
                order_key = make_idempotency_order_key(first)
                evicted = self.store.get(order_key)
                if evicted is not None:  # None: a discarded key left a gap
                    batch.delete(evicted)
                    batch.delete(order_key)
                first += 1
        self._first, self._next = first, record.seq + 1
        return record

    def discard(self, scope: str, key: str) -> None:
        """Forget a key whose tx never entered the mempool, so that a retry may sign anew."""
        record_key = make_idempotency_key(scope, key)
        record = self.get(scope, key)
        if record is None:
            return
        with self.store.atomic_batch() as batch:
            batch.delete(record_key)
            batch.delete(make_idempotency_order_key(record.seq))


def _order_seq(order_key: bytes) -> int:
    return decode_height(order_key[len(IDEMPOTENCY_ORDER_PREFIX) :])
