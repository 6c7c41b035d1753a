"""The explorer's live feed: `GET /v1/events`, Server-Sent Events of new blocks.

A client first gets a `snapshot` (the network's status, the recent blocks behind the
charts, the latest txs), then a `block` event per committed block and a `status` event
when the round, the mempool or the peers change. A reconnecting EventSource gets a new
snapshot, so a client never has to guess what it missed.

Bounds: at most `MAX_CLIENTS` streams at once (then 429 `too_many_clients`); each client
has a queue of `CLIENT_QUEUE` events, and one that does not keep up (a full queue) is
dropped, its browser reconnecting; a write that does not finish in `WRITE_TIMEOUT_S` ends
the stream. So a slow or stalled client costs the node at most one queue and one socket
buffer. The feed reads the chain only while some client listens.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from ledger.tx import SignedTx
from node import views
from node.api import NODE, error_response
from node.runtime import Node
from node.webchain import WINDOW_MS, ChainWindow, latest_txs, network_status, read_last_txs
from node.webwords import describe

log = logging.getLogger("bakong.web")

MAX_CLIENTS: Final = 32
CLIENT_QUEUE: Final = 16
WRITE_TIMEOUT_S: Final = 10.0
KEEPALIVE_S: Final = 15.0
CHECK_S: Final = 1.0
POLL_S: Final = 0.25
STATUS_EVERY_S: Final = 2.0
# txs of a block an event carries (the newest), and blocks one poll announces at most
EVENT_TXS: Final = 10
MAX_EVENTS_PER_POLL: Final = 20
SNAPSHOT_BLOCKS: Final = 600
RETRY_MS: Final = 3000


@dataclass(eq=False, slots=True)
class Subscriber:
    """One stream's queue of encoded events; None in it ends the stream."""

    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: bool = False


class EventHub:
    """The open streams; `publish` never waits: a full queue drops its client."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self.max_clients = max_clients
        self._subscribers: set[Subscriber] = set()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber | None:
        if len(self._subscribers) >= self.max_clients:
            return None
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def publish(self, frame: bytes) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(subscriber)

    def close(self) -> None:
        """End every stream (the node is shutting down)."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(None)
            except asyncio.QueueFull:
                self._drop(subscriber)
        self._subscribers.clear()

    def _drop(self, subscriber: Subscriber) -> None:
        subscriber.dropped = True
        self._subscribers.discard(subscriber)
        self.dropped += 1


def encode_event(name: str, data: Any) -> bytes:
    """One SSE frame. json.dumps escapes newlines and non-ASCII, so data is one line."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def tx_item(
    tx: SignedTx, height: int | None, position: int | None, decimals: dict[str, int]
) -> dict[str, Any]:
    """A tx as the live lists show it: hash, where, signer and its commands in words."""
    words = [
        part
        for cmd in tx.body.commands
        for part in (*describe(cmd, tx.body.signer, decimals), ("text", "; "))
    ]
    return {
        "hash": tx.hash.hex(),
        "height": height,
        "position": position,
        "signer": tx.body.signer,
        "words": [list(part) for part in words[:-1]],
    }


class Feed:
    """The window of recent blocks and the hub of streams, for one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.window = ChainWindow(node)
        self.hub = EventHub()
        self._published = node.engine.height
        self._status: dict[str, Any] | None = None
        self._polls = 0

    def now_ms(self) -> int:
        return self.node.clock_ms()

    def snapshot(self) -> dict[str, Any]:
        node = self.node
        tip = node.engine.height
        self.window.advance(tip)
        decimals = views.get_decimals(node.store)
        blocks = self.window.since(self.now_ms() - WINDOW_MS)[-SNAPSHOT_BLOCKS:]
        return {
            "now": self.now_ms(),
            "status": network_status(node),
            "blocks": [b.to_json() for b in blocks],
            "txs": [tx_item(tx, h, p, decimals) for tx, h, p in latest_txs(node, tip, EVENT_TXS)],
        }

    def poll(self) -> None:
        """Announce the blocks committed since the last poll, then a changed status."""
        if not len(self.hub):
            self._published = self.node.engine.height
            return
        self.window.advance(self.node.engine.height)
        fresh = self.window.after(self._published)[-MAX_EVENTS_PER_POLL:]
        status = network_status(self.node) if fresh or self._status_due() else None
        decimals = views.get_decimals(self.node.store) if fresh else {}
        for summary in fresh:
            newest = read_last_txs(self.node, summary.height, EVENT_TXS)
            items = [tx_item(tx, summary.height, at, decimals) for tx, at in newest]
            data = {
                "now": self.now_ms(),
                "block": summary.to_json(),
                "txs": items,
                "status": status,
            }
            self.hub.publish(encode_event("block", data))
            self._published = summary.height
        if status is not None and status != self._status:
            self._status = status
            if not fresh:
                self.hub.publish(encode_event("status", {"now": self.now_ms(), "status": status}))

    def _status_due(self) -> bool:
        self._polls += 1
        return self._polls % round(STATUS_EVERY_S / POLL_S) == 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                self.poll()
            except Exception:
                log.exception("the explorer's live feed failed to read a block")


FEED: web.AppKey[Feed] = web.AppKey("explorer_feed", Feed)


SSE_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}


async def stream_events(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEED]
    subscriber = feed.hub.subscribe()
    if subscriber is None:
        refusal = error_response(
            429,
            "too_many_clients",
            f"at most {feed.hub.max_clients} live streams at once; try again later",
        )
        refusal.headers["Retry-After"] = "10"
        return refusal
    stream = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await stream.prepare(request)
        first = f"retry: {RETRY_MS}\n\n".encode() + encode_event("snapshot", feed.snapshot())
        await _write(stream, first)
        await _pump(request, subscriber, stream)
    except (ConnectionError, TimeoutError):
        pass  # the client went away or stopped reading: its stream ends
    except Exception:
        # the headers are sent: an error can only end the stream (the browser reconnects)
        log.exception("the explorer's live feed failed a stream")
    finally:
        feed.hub.unsubscribe(subscriber)
    return stream


async def _pump(request: web.Request, subscriber: Subscriber, stream: web.StreamResponse) -> None:
    """Write the subscriber's events until it is dropped, the hub closes or the client
    hangs up (checked every `CHECK_S`: a closed tab frees its slot within a second)."""
    idle = 0.0
    while not subscriber.dropped:
        try:
            frame = await asyncio.wait_for(subscriber.queue.get(), CHECK_S)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            idle += CHECK_S
            if idle < KEEPALIVE_S:
                continue
            frame = b": keepalive\n\n"
        if frame is None or subscriber.dropped:
            return
        idle = 0.0
        await _write(stream, frame)


async def _write(response: web.StreamResponse, data: bytes) -> None:
    await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_S)


def add_feed(app: web.Application) -> None:
    """The feed starts and stops with the node (its cleanup context comes after the
    node's, so the node exists when it starts and outlives it)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        feed = Feed(app[NODE])
        app[FEED] = feed
        task = asyncio.create_task(feed.run(), name="explorer-feed")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def on_shutdown(app: web.Application) -> None:
        if FEED in app:
            app[FEED].hub.close()

    app.cleanup_ctx.append(context)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/v1/events", stream_events)
