"""The LevelDB `KeyValueStore` (plyvel): what nodes run on.

Every plyvel failure surfaces as a `StoreError`: `store_locked` when another process (or
another handle in this one) holds the database, `store_closed` after `close`, else
`store_error`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plyvel

from ledger.errors import StoreError
from ledger.kv import WriteBatch
from ledger.store import KeyRange, compute_key_range


class LevelDBStore:
    def __init__(self, path: str | Path, create_if_missing: bool = True) -> None:
        self.path = Path(path)
        try:
            # Bloom filters make misses (a new tx hash, a new account) cheap. No
            # compression, a trade of disk for CPU: Snappy cost 5 % of a validator's CPU
            # and most of compaction's (bench_ledger: commit 42,977 -> 77,518 tx/s of CPU;
            # 4 + 1 nodes: 2,589 -> 2,923 tx/s); the store grows from 308 to 505 bytes
            # per tx on a million-account chain (hashes and signatures do not compress,
            # account names in keys did). docs/performance.md has the figures.
            # Tables an older version compressed stay readable: LevelDB records the
            # compression of each block.
            self._db = plyvel.DB(
                str(self.path),
                create_if_missing=create_if_missing,
                bloom_filter_bits=10,
                lru_cache_size=32 * 1024 * 1024,
                compression=None,
            )
        except plyvel.Error as exc:
            raise _open_error(self.path, exc) from exc
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        """The hot path of execution: plyvel itself refuses a closed database."""
        try:
            value: bytes | None = self._db.get(key)
        except RuntimeError as exc:
            raise StoreError(f"the store at {self.path} is closed", "store_closed") from exc
        return value

    def put(self, key: bytes, value: bytes) -> None:
        """Survives a process crash (not a power loss); use `atomic_batch` for durability."""
        self._check_open()
        self._db.put(key, value)

    def delete(self, key: bytes) -> None:
        self._check_open()
        self._db.delete(key)

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        key_range = compute_key_range(prefix, start, reverse)
        if key_range is None:
            return iter(())
        if reverse:
            return self._iterate_reverse(key_range)
        items: Iterator[tuple[bytes, bytes]] = self._db.iterator(
            start=key_range.lo, stop=key_range.hi
        )
        return items

    def _iterate_reverse(self, key_range: KeyRange) -> Iterator[tuple[bytes, bytes]]:
        """Walk a raw iterator down: plyvel's reverse iterator yields nothing when its stop
        key lies past the last key of the database."""
        raw = self._db.raw_iterator()
        if key_range.hi is None:
            raw.seek_to_last()
        else:
            raw.seek(key_range.hi)
            if not raw.valid():
                raw.seek_to_last()
            elif not (key_range.hi_inclusive and raw.key() == key_range.hi):
                raw.prev()
        return _walk_down(raw, key_range.lo)

    @contextmanager
    def atomic_batch(self, sync: bool = True) -> Iterator[WriteBatch]:
        """One LevelDB WriteBatch, written (fsynced unless `sync` is False) only if the block
        exits cleanly. Unsynced batches survive a process crash, not a power loss."""
        self._check_open()
        batch = self._db.write_batch(sync=sync)
        yield batch
        self._check_open()
        try:
            batch.write()
        except plyvel.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed", "store_closed")


def _walk_down(raw: Any, lo: bytes) -> Iterator[tuple[bytes, bytes]]:
    while raw.valid():
        key: bytes = raw.key()
        if key < lo:
            return
        yield key, raw.value()
        raw.prev()


def _open_error(path: Path, exc: plyvel.Error) -> StoreError:
    text = str(exc)
    if "lock" in text.lower():
        return StoreError(
            f"the store at {path} is locked: is another node using it? ({text})",
            "store_locked",
        )
    return StoreError(f"cannot open the store at {path}: {text}")
