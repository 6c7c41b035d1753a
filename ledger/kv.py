"""The storage interface every backend implements (memory for tests, LevelDB for real runs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol


class KeyValueReader(Protocol):
    """Read-only view: what the state transition needs."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with `prefix`, in key order (or reversed).

        `start` (inclusive) is a full key at which to begin; with `reverse=True` iteration
        begins at `start` and goes down.
        """
        ...


class WriteBatch(Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class KeyValueStore(KeyValueReader, Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def atomic_batch(self, sync: bool = True) -> AbstractContextManager[WriteBatch]:
        """All writes in the block land together on a clean exit, and none land if the
        block raises. `sync` (the default) makes them durable across a power loss too."""
        ...

    def close(self) -> None: ...
