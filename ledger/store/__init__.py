"""Key-value store backends: `memory.MemoryStore` for tests, `leveldb.LevelDBStore` for runs.

Both implement `ledger.kv.KeyValueStore` with the same range semantics, computed here once
so that one conformance suite can hold them to identical behaviour.
"""

from __future__ import annotations

from typing import NamedTuple


class KeyRange(NamedTuple):
    """Keys k with lo <= k and k < hi (k <= hi when hi_inclusive); hi None means unbounded."""

    lo: bytes
    hi: bytes | None
    hi_inclusive: bool


def compute_prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None if none is)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def compute_key_range(prefix: bytes, start: bytes | None, reverse: bool) -> KeyRange | None:
    """The range `iterate(prefix, start=, reverse=)` covers, or None when it is empty."""
    end = compute_prefix_end(prefix)
    if not reverse:
        lo = prefix if start is None or start < prefix else start
        if end is not None and lo >= end:
            return None
        return KeyRange(lo, end, False)
    if start is None or (end is not None and start >= end):
        return KeyRange(prefix, end, False)
    if start < prefix:
        return None
    return KeyRange(prefix, start, True)
