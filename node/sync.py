"""Block sync decisions: whom to ask for which blocks, and how many blocks one reply holds.

Pure: no sockets, no clock. The engine reports peers' claimed heights and the outcome of
each reply, passes `now` (monotonic seconds) to anything that depends on time, and sends
the requests it is handed. A claimed height is never trusted: it only decides whom to
ask, and a peer that claims blocks it does not deliver is asked last, then not at all for
a while, and meanwhile its claim no longer makes this node "behind".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from node.messages import ENVELOPE_BYTES, ITEM_OVERHEAD_BYTES, MAX_SYNC_BLOCKS

MiB = 1024 * 1024


def select_blocks(
    blocks: Iterable[tuple[bytes, bytes]], limit: int, max_frame_bytes: int
) -> list[list[bytes]]:
    """The BLOCKS payload for a GET_BLOCKS: (raw block, raw commit) pairs from the start
    height, at most `limit`, and no more than fit one frame. The first pair is always
    taken, or sync could never pass it (`node.config.check_config` makes a block within
    the limits fit); `blocks` is read lazily, at most one pair past the last returned."""
    budget = max_frame_bytes - ENVELOPE_BYTES
    out: list[list[bytes]] = []
    used = 0
    for raw_block, raw_commit in blocks:
        size = len(raw_block) + len(raw_commit) + ITEM_OVERHEAD_BYTES
        if out and used + size > budget:
            break
        out.append([raw_block, raw_commit])
        used += size
        if len(out) >= limit:
            break
    return out


class Verdict(StrEnum):
    """What a BLOCKS reply was worth; EMPTY and INVALID count as failures of the peer."""

    UNSOLICITED = "unsolicited"  # no request to that peer is in flight: drop it undecoded
    DELIVERED = "delivered"  # new valid blocks
    NOTHING_NEW = "nothing_new"  # empty, but the range was filled meanwhile: no fault
    EMPTY = "empty"  # nothing, while the peer claims more and we still lack it
    INVALID = "invalid"  # a block or commit that did not verify


@dataclass(frozen=True, slots=True)
class SyncParams:
    # Blocks asked for in one request (the GET_BLOCKS limit).
    max_blocks: int = MAX_SYNC_BLOCKS
    # Requests in flight at once, one per peer. The second is only a hedge: it is sent
    # while no in-flight request goes to a trusted peer (one that delivered within
    # `recent_s` and has not failed since), so a liar holding a slot never stalls sync,
    # and two trusted peers are never asked for the same range.
    max_inflight: int = 2
    # Deadline of a request: base_timeout_s, plus the time its largest possible reply
    # (count full blocks, at most one frame) takes at min_rate_bytes_per_s. With the
    # defaults, 4 s for one block and 6 s for two or more.
    base_timeout_s: float = 2.0
    max_block_bytes: int = 8 * MiB
    max_reply_bytes: int = 16 * MiB
    min_rate_bytes_per_s: float = 4 * MiB
    # After failure_limit failures in a row (a timeout, an empty or an invalid reply) a
    # peer is not asked for backoff_s, doubling at each further failure up to
    # backoff_max_s; one delivery clears its record.
    failure_limit: int = 3
    backoff_s: float = 30.0
    backoff_max_s: float = 480.0
    # A delivery this recent ranks a peer first among those without failures.
    recent_s: float = 30.0
    # A peer one block ahead is normal for a moment (it committed first and our
    # precommits are on their way): sync only once that has lasted grace_s.
    grace_s: float = 1.5
    # Peers tracked at once (connected, or disconnected with failures on record).
    max_peers: int = 256


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A GET_BLOCKS in flight: send `[start, count]` to `peer`."""

    peer: bytes
    start: int
    count: int
    deadline: float


@dataclass(frozen=True, slots=True)
class PeerRecord:
    claim: int = 0  # highest height the peer said it holds; 0 once it disconnects
    connected: bool = True
    failures: int = 0  # in a row
    backoffs: int = 0  # back-offs in a row; each doubles the next
    backoff_until: float = 0.0
    delivered_at: float = -math.inf


class SyncTracker:
    """Which peer to ask next, and how each peer has answered so far."""

    def __init__(self, params: SyncParams | None = None) -> None:
        self.params = params or SyncParams()
        self._peers: dict[bytes, PeerRecord] = {}
        self._inflight: dict[bytes, SyncRequest] = {}
        # (our height, since when a peer has been one block ahead of it)
        self._grace: tuple[int, float] | None = None

    # Queries.
    def get_record(self, peer: bytes) -> PeerRecord | None:
        return self._peers.get(peer)

    def get_awaited(self, peer: bytes) -> SyncRequest | None:
        """The request in flight to `peer`; None means a BLOCKS from it is unsolicited."""
        return self._inflight.get(peer)

    def get_target(self, now: float) -> int:
        """The highest height claimed by a peer that is not backed off (0 if none)."""
        return max((r.claim for r in self._peers.values() if now >= r.backoff_until), default=0)

    # Events.
    def on_claim(self, peer: bytes, height: int) -> bool:
        """A peer says it holds `height` (its STATUS, or one below a later proposal or
        vote). False if ignored because too many peers are tracked."""
        record = self._admit(peer)
        if record is None:
            return False
        self._peers[peer] = replace(record, claim=max(record.claim, height), connected=True)
        return True

    def next_request(self, our_height: int, now: float) -> SyncRequest | None:
        """The next GET_BLOCKS to send, if this node is behind and a slot is free. Releases
        timed-out requests first, as `expire` does."""
        self.expire(now)
        if not self._is_due(our_height, now) or not self._is_slot_free(now):
            return None
        candidates = [
            peer
            for peer, record in self._peers.items()
            if peer not in self._inflight
            and record.claim > our_height
            and now >= record.backoff_until
        ]
        if not candidates:
            return None
        peer = min(candidates, key=lambda p: self._compute_rank(p, now))
        count = min(self.params.max_blocks, self._peers[peer].claim - our_height)
        request = SyncRequest(peer, our_height + 1, count, now + self._compute_timeout(count))
        self._inflight[peer] = request
        return request

    def on_blocks(
        self, peer: bytes, delivered: int, valid: bool, our_height: int, now: float
    ) -> Verdict:
        """A BLOCKS reply was processed: `delivered` blocks of it were applied, `valid` is
        False if one was refused, `our_height` is the height after applying."""
        request = self._inflight.pop(peer, None)
        if request is None:
            return Verdict.UNSOLICITED
        if not valid:
            self._fail(peer, now)
            return Verdict.INVALID
        if delivered > 0:
            self._peers[peer] = replace(
                self._peers[peer], failures=0, backoffs=0, backoff_until=0.0, delivered_at=now
            )
            return Verdict.DELIVERED
        if our_height < request.start and self._peers[peer].claim > our_height:
            self._fail(peer, now)
            return Verdict.EMPTY
        return Verdict.NOTHING_NEW

    def expire(self, now: float) -> list[SyncRequest]:
        """Release the requests past their deadline; each is a failure of its peer."""
        late = [r for r in self._inflight.values() if now >= r.deadline]
        for request in late:
            del self._inflight[request.peer]
            self._fail(request.peer, now)
        return late

    def forget(self, peer: bytes) -> None:
        """The peer disconnected: drop its claim and its request. A record of failures is
        kept, so reconnecting does not clear a back-off."""
        self._inflight.pop(peer, None)
        record = self._peers.pop(peer, None)
        if record is not None and record.failures > 0:
            self._peers[peer] = replace(record, claim=0, connected=False)

    def end_grace(self, our_height: int) -> None:
        """The next block is known decided (we hold its precommits, not the block): a
        peer one block ahead is then worth asking at once."""
        self._grace = (our_height, -math.inf)

    # Helpers.
    def _is_due(self, our_height: int, now: float) -> bool:
        """True if a trusted-enough claim is ahead of us, past the one-block grace."""
        target = self.get_target(now)
        if target <= our_height:
            self._grace = None
            return False
        if target > our_height + 1:
            return True
        if self._grace is None or self._grace[0] != our_height:
            self._grace = (our_height, now)
        return now - self._grace[1] >= self.params.grace_s

    def _is_slot_free(self, now: float) -> bool:
        if len(self._inflight) >= self.params.max_inflight:
            return False
        return not any(self._is_trusted(peer, now) for peer in self._inflight)

    def _is_trusted(self, peer: bytes, now: float) -> bool:
        record = self._peers[peer]
        return record.failures == 0 and now - record.delivered_at <= self.params.recent_s

    def _compute_rank(self, peer: bytes, now: float) -> tuple[int, bool, int, bytes]:
        """Fewest failures first, then a recent delivery, then the highest claim."""
        record = self._peers[peer]
        recent = now - record.delivered_at <= self.params.recent_s
        return record.failures, not recent, -record.claim, peer

    def _compute_timeout(self, count: int) -> float:
        largest = min(count * self.params.max_block_bytes, self.params.max_reply_bytes)
        return self.params.base_timeout_s + largest / self.params.min_rate_bytes_per_s

    def _fail(self, peer: bytes, now: float) -> None:
        record = self._peers[peer]
        failures = record.failures + 1
        if failures < self.params.failure_limit:
            self._peers[peer] = replace(record, failures=failures)
            return
        pause = min(
            self.params.backoff_max_s, self.params.backoff_s * 2 ** min(record.backoffs, 32)
        )
        self._peers[peer] = replace(
            record, failures=failures, backoffs=record.backoffs + 1, backoff_until=now + pause
        )

    def _admit(self, peer: bytes) -> PeerRecord | None:
        """The peer's record, a new one if there is room (evicting the oldest record of a
        disconnected peer if need be), else None."""
        record = self._peers.get(peer)
        if record is not None:
            return record
        if len(self._peers) >= self.params.max_peers:
            gone = next((p for p, r in self._peers.items() if not r.connected), None)
            if gone is None:
                return None
            del self._peers[gone]
        return PeerRecord()
