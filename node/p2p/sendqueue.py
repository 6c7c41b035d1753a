"""The bounded queue of encoded frames waiting to be written to one peer."""

from __future__ import annotations

from collections import deque

from node.p2p.counters import P2PCounters
from node.p2p.errors import P2PError

# Gossip put ahead of a compact proposal at most (about 6,000 bench txs; 1 MiB is 80 ms
# at 100 Mbit/s): votes queued after the proposal wait for it too.
MAX_PROMOTED_BYTES = 1024 * 1024


class SendQueueOverflow(P2PError):
    """A frame that must not be dropped does not fit: the peer is too slow to keep."""

    code = "slow_peer"


class SendQueue:
    """Frames for one peer, bounded in count and bytes, never blocking the caller.

    Reliable frames (consensus) are written before droppable ones (gossip), each class
    in FIFO order, except that a frame put `behind_droppable` goes after every frame
    queued before it. When full, the oldest droppable frames make room; a reliable frame
    that still does not fit raises SendQueueOverflow.
    """

    __slots__ = ("_bytes", "_counters", "_droppable", "_max_bytes", "_max_frames", "_reliable")

    def __init__(self, max_frames: int, max_bytes: int, counters: P2PCounters) -> None:
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._counters = counters
        self._reliable: deque[bytes] = deque()
        self._droppable: deque[bytes] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._reliable) + len(self._droppable)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def put(self, frame: bytes, droppable: bool, *, behind_droppable: bool = False) -> bool:
        """Queue `frame`; False if it was dropped for lack of room. `behind_droppable`
        (a reliable frame that names what droppable frames carry, as a compact proposal
        names gossiped txs): the droppable frames queued now become reliable, so they go
        out before it instead of after and are no longer dropped. Only while the queue
        holds at most MAX_PROMOTED_BYTES and a quarter of its frames: every consensus
        frame queued later waits behind them, and a peer further behind asks for what it
        lacks anyway, its gossip still the first to give way to consensus."""
        if (
            behind_droppable
            and self._droppable
            and 4 * len(self) <= self._max_frames
            and self._bytes <= min(MAX_PROMOTED_BYTES, self._max_bytes // 4)
        ):
            self._reliable.extend(self._droppable)
            self._droppable.clear()
        while not self._has_room(len(frame)) and self._droppable:
            self._bytes -= len(self._droppable.popleft())
            self._counters.dropped["queue_full"] += 1
        # Room is left once no older droppable frame remains to give way.
        if not self._has_room(len(frame)):
            if not droppable:
                raise SendQueueOverflow(f"{len(self)} frames, {self._bytes} bytes queued")
            self._counters.dropped["queue_full"] += 1
            return False
        (self._droppable if droppable else self._reliable).append(frame)
        self._bytes += len(frame)
        return True

    def take_batch(self, max_bytes: int) -> list[bytes]:
        """Remove and return the next frames, at least one, up to about `max_bytes`."""
        batch: list[bytes] = []
        size = 0
        while size < max_bytes and (self._reliable or self._droppable):
            frame = (self._reliable or self._droppable).popleft()
            batch.append(frame)
            size += len(frame)
        self._bytes -= size
        return batch

    def _has_room(self, size: int) -> bool:
        return len(self) < self._max_frames and self._bytes + size <= self._max_bytes
