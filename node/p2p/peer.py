"""One authenticated, encrypted session with a peer: a reader loop and a writer task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ledger.errors import CodecError
from node.p2p.counters import P2PCounters
from node.p2p.errors import FrameError
from node.p2p.framing import FIRST_APP_MESSAGE_TYPE, HEADER_BYTES, MSG_PING, decode_message
from node.p2p.params import P2PParams
from node.p2p.secure import TAG_BYTES, ChannelBroken, PeerIdentity, SecretChannel
from node.p2p.sendqueue import SendQueue, SendQueueOverflow

log = logging.getLogger("bakong.p2p")

Dispatch = Callable[[bytes, int, Any], Awaitable[None]]


class Peer:
    """A connected, authenticated peer. The owner calls `run()` once; `close()` ends it.

    Frames are read, opened and dispatched in order on the session's own task (no task
    per message); writes are sealed and batched by one writer task draining the send
    queue, which holds plain frame bodies (a broadcast encodes once, seals per peer).
    A frame that fails to open ends the session at once; a frame that opens but is
    malformed counts as a bad frame, and `max_bad_frames` of them end it.
    """

    def __init__(
        self,
        identity: PeerIdentity,
        channel: SecretChannel,
        outbound: bool,
        address: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        params: P2PParams,
        counters: P2PCounters,
    ) -> None:
        self.identity = identity
        self._channel = channel
        self.outbound = outbound
        self.address = address
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._reader = reader
        self._writer = writer
        self._params = params
        self._counters = counters
        self._queue = SendQueue(params.send_queue, params.send_queue_bytes, counters)
        self._wakeup = asyncio.Event()
        self._bad_frames = 0
        self._loop = asyncio.get_running_loop()
        self.last_received = self._loop.time()

    @property
    def key(self) -> bytes:
        return self.identity.public_key

    @property
    def queued_frames(self) -> int:
        return len(self._queue)

    def send_frame(self, frame: bytes, droppable: bool, *, behind_droppable: bool = False) -> bool:
        """Queue an encoded frame body (sealed when written); never blocks. A reliable
        frame that does not fit closes the session (the peer resyncs on reconnect) and
        returns False. `behind_droppable` as in `SendQueue.put`."""
        if self.close_reason:
            return False
        try:
            queued = self._queue.put(frame, droppable, behind_droppable=behind_droppable)
        except SendQueueOverflow as exc:
            log.warning("peer %s: send queue full (%s), disconnecting", self.key.hex()[:16], exc)
            self.close(exc.code)
            return False
        if queued:
            self._wakeup.set()
        return queued

    def close(self, reason: str) -> None:
        """End the session now, discarding unsent frames. Idempotent."""
        if not self.close_reason:
            self.close_reason = reason
        self._writer.transport.abort()

    async def run(self, dispatch: Dispatch) -> str:
        """Serve the session until it ends; return why it ended."""
        writer_task = asyncio.create_task(self._write_loop())
        try:
            await self._read_loop(dispatch)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.close("closed")
        except ChannelBroken as exc:
            self._counters.dropped[exc.code] += 1
            log.warning("peer %s: %s, disconnecting", self.key.hex()[:16], exc)
            self.close(exc.code)
        finally:
            self.close(self.close_reason or "stopping")
            writer_task.cancel()
            try:
                # wait() (unlike awaiting the task) lets our own cancellation through.
                await asyncio.wait([writer_task])
            finally:
                self.closed.set()
        return self.close_reason

    async def _read_loop(self, dispatch: Dispatch) -> None:
        max_bytes = self._params.max_frame_bytes
        counters = self._counters
        channel = self._channel
        while not self.close_reason:
            body = await channel.read(self._reader, max_bytes)
            try:
                msg_type, payload = decode_message(body, max_bytes)
            except FrameError as exc:
                self._on_bad_frame(exc)
                continue
            self.last_received = self._loop.time()
            counters.frames_in += 1
            counters.bytes_in += HEADER_BYTES + TAG_BYTES + len(body)
            if msg_type >= FIRST_APP_MESSAGE_TYPE:
                await self._dispatch(dispatch, msg_type, payload)
            elif msg_type != MSG_PING:
                self._on_bad_frame(FrameError(f"message {msg_type} after handshake", "protocol"))

    async def _dispatch(self, dispatch: Dispatch, msg_type: int, payload: Any) -> None:
        try:
            await dispatch(self.key, msg_type, payload)
        except FrameError as exc:
            self._on_bad_frame(exc)
        except CodecError as exc:
            self._on_bad_frame(
                FrameError(f"bad payload of message {msg_type}: {exc}", "bad_payload")
            )

    def _on_bad_frame(self, exc: FrameError) -> None:
        self._counters.dropped[exc.code] += 1
        self._bad_frames += 1
        log.info("peer %s: dropped frame: %s", self.key.hex()[:16], exc)
        if self._bad_frames >= self._params.max_bad_frames:
            log.warning(
                "peer %s: %d bad frames, disconnecting", self.key.hex()[:16], self._bad_frames
            )
            self.close("bad_frames")

    async def _write_loop(self) -> None:
        counters = self._counters
        seal = self._channel.seal
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._queue.take_batch(self._params.write_batch_bytes)
                sealed = [seal(body) for body in batch]
                self._writer.writelines(sealed)
                counters.frames_out += len(sealed)
                counters.bytes_out += sum(map(len, sealed))
                await self._writer.drain()
        except (ConnectionError, OSError):
            self.close("closed")
        except FrameError as exc:  # the frame counter ran out: a new session starts over
            self.close(exc.code)
