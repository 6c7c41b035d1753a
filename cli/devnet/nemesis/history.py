"""The history of a run: every operation and fault as one JSON object per line.

Each record has `t` (seconds since the run started, monotonic) and `wall_ms` (the
machine's clock, for comparing with block times), and a `type`:

    invoke / ok / fail / info   a client operation (Jepsen's terms): invoked, then
                                acknowledged, definitely not applied, or unknown
                                (`process`: the client, `f`: transfer | read, `value`)
    nemesis                     a fault starting (`f`: start) or healed (`f`: stop),
                                with its `fault`, `variant`, `nodes`, `id`
    observe                     a node's status when it changed (height, block hash)
    setup / final               the accounts and total; what the end of the run saw
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any


class History:
    """Thread-safe: clients, the nemesis and the observer all append to one history."""

    def __init__(self, path: Path | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._file: IO[str] | None = path.open("w") if path is not None else None

    def now(self) -> float:
        return time.monotonic() - self._t0

    def add(self, type: str, **fields: Any) -> dict[str, Any]:
        record = {"t": round(self.now(), 4), "wall_ms": int(time.time() * 1000), "type": type}
        record.update(fields)
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            self.records.append(record)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
        return record

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["type"] in types]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load_history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_history(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True) + "\n")
