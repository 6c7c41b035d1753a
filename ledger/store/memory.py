"""An in-memory `KeyValueStore`: a dict plus a sorted key list, for tests and replays."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from contextlib import contextmanager

from ledger.errors import StoreError
from ledger.kv import WriteBatch
from ledger.store import compute_key_range

# Past this many added or removed keys, re-sorting beats inserting one at a time.
_BULK = 32


class MemoryBatch:
    """Buffered writes, applied in order by `MemoryStore.atomic_batch` on a clean exit."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append((bytes(key), bytes(value)))

    def delete(self, key: bytes) -> None:
        self.ops.append((bytes(key), None))


class MemoryStore:
    """Iterators see a snapshot taken when `iterate` is called, as LevelDB's do."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._check_open()
        self._put(bytes(key), bytes(value))

    def delete(self, key: bytes) -> None:
        self._check_open()
        self._delete(key)

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        key_range = compute_key_range(prefix, start, reverse)
        if key_range is None:
            return iter(())
        lo = bisect.bisect_left(self._keys, key_range.lo)
        if key_range.hi is None:
            hi = len(self._keys)
        elif key_range.hi_inclusive:
            hi = bisect.bisect_right(self._keys, key_range.hi)
        else:
            hi = bisect.bisect_left(self._keys, key_range.hi)
        keys = self._keys[lo:hi]
        if reverse:
            keys.reverse()
        return iter([(key, self._data[key]) for key in keys])

    @contextmanager
    def atomic_batch(self, sync: bool = True) -> Iterator[WriteBatch]:
        self._check_open()
        batch = MemoryBatch()
        yield batch
        self._check_open()
        self._apply(batch.ops)

    def close(self) -> None:
        self._closed = True

    def _apply(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        """Apply a batch, then fix the key order once (a block adds thousands of keys)."""
        before = {key for key, _ in ops if key in self._data}
        for key, value in ops:
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value
        touched = {key for key, _ in ops}
        added = [key for key in touched - before if key in self._data]
        removed = {key for key in before if key not in self._data}
        if len(added) + len(removed) < _BULK:
            for key in removed:
                del self._keys[bisect.bisect_left(self._keys, key)]
            for key in added:
                bisect.insort(self._keys, key)
            return
        if removed:
            self._keys = [key for key in self._keys if key not in removed]
        self._keys.extend(added)
        self._keys.sort()

    def _put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = value

    def _delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed", "store_closed")
