"""The next height's inbox: consensus messages that arrive one height early.

A peer one block ahead sends its votes and proposals for the height this node is about
to enter; keeping them saves a round. They are kept only after the engine checked them
(decoded, signed by a validator or the round's proposer of that height, round in the
window), and bounded per peer in count and bytes, with at most two distinct messages per
(kind, round, vote type, signer): a second one is what equivocation evidence needs, a
third is noise. `drain` hands them back, in arrival order, when the height starts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_PER_PEER = 512
MAX_BYTES_PER_PEER = 24 * 1024 * 1024
MAX_PER_STEP = 2

StepKey = tuple[int, int, int, bytes]
"""(message kind, round, vote type or 0, signer key)."""


@dataclass(slots=True)
class _PeerShare:
    count: int = 0
    bytes: int = 0


@dataclass(slots=True)
class FutureInbox:
    max_per_peer: int = MAX_PER_PEER
    max_bytes_per_peer: int = MAX_BYTES_PER_PEER
    _messages: list[tuple[bytes, Any]] = field(default_factory=list)
    _shares: dict[bytes, _PeerShare] = field(default_factory=dict)
    _per_step: Counter[StepKey] = field(default_factory=Counter)
    _seen: set[tuple[StepKey, bytes]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._messages)

    def offer(
        self, peer: bytes, step: StepKey, value: bytes, size: int, message: Any
    ) -> str | None:
        """Keep `message` (from `peer`, `size` bytes on the wire, for `step` with `value`,
        e.g. the block hash it names); or say why not."""
        if (step, value) in self._seen:
            return "duplicate"
        if self._per_step[step] >= MAX_PER_STEP:
            return "equivocation"
        share = self._shares.setdefault(peer, _PeerShare())
        if share.count >= self.max_per_peer or share.bytes + size > self.max_bytes_per_peer:
            return "peer_full"
        share.count += 1
        share.bytes += size
        self._per_step[step] += 1
        self._seen.add((step, value))
        self._messages.append((peer, message))
        return None

    def peer_bytes(self, peer: bytes) -> int:
        share = self._shares.get(peer)
        return share.bytes if share else 0

    def drain(self) -> list[Any]:
        """Every kept message, in arrival order; the inbox is empty afterwards."""
        messages = [message for _, message in self._messages]
        self.clear()
        return messages

    def clear(self) -> None:
        self._messages.clear()
        self._shares.clear()
        self._per_step.clear()
        self._seen.clear()
