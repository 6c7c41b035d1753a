"""The node's view of the P2P network: listens, dials its configured peers, keeps one
authenticated, encrypted session per admitted peer, and moves frames between them and
the node. Before a connection is authenticated it costs little and not for long: a
deadline, frames of a few hundred bytes, and a cap on handshakes in progress, in total
and per source address."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ledger.crypto import PrivateKey
from ledger.errors import CodecError
from node.p2p.counters import P2PCounters
from node.p2p.errors import FrameError, HandshakeRefused
from node.p2p.framing import MSG_PING, encode_body
from node.p2p.params import P2PParams, compute_backoff
from node.p2p.peer import Peer
from node.p2p.secure import secret_handshake

log = logging.getLogger("bakong.p2p")

OnMessage = Callable[[bytes, int, Any], Awaitable[None] | None]
OnPeer = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """How one connection attempt ended, for the dialer's next move."""

    peer_key: bytes | None
    established: bool
    refusal: str | None


def _ignore_peer(peer_key: bytes) -> None:
    """Default for the connect/disconnect callbacks."""


def _address_of(info: Any) -> tuple[str, int] | None:
    """(host, port) of a socket address as asyncio reports it, if it is an IP one."""
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


class PeerManager:
    """Permissioned P2P: only peers whose node key `is_admitted` accepts get a session.

    `on_message(peer_key, msg_type, payload)` runs on the session's reader task, in
    arrival order; it may be a coroutine function (awaited: backpressure on that peer).
    Its exceptions are logged and counted, never fatal; FrameError or CodecError from
    it counts as a bad frame from that peer. `on_peer_connected` and
    `on_peer_disconnected` come in pairs per session (a duplicate session replacing
    another counts as a disconnect then a connect).
    """

    def __init__(
        self,
        node_key: PrivateKey,
        chain_id: str,
        listen_host: str,
        listen_port: int,
        peers: Iterable[tuple[str, int]],
        is_admitted: Callable[[bytes], bool],
        on_message: OnMessage,
        on_peer_connected: OnPeer = _ignore_peer,
        on_peer_disconnected: OnPeer = _ignore_peer,
        params: P2PParams | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_key = node_key
        self.public_key = node_key.public_key
        self.chain_id = chain_id
        self.params = params or P2PParams()
        self.counters = P2PCounters()
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._dial_addresses = list(peers)
        self._is_admitted = is_admitted
        self._on_message = on_message
        self._on_connected = on_peer_connected
        self._on_disconnected = on_peer_disconnected
        self._rng = rng or random.Random()
        # Inbound connections still in their handshake, per source address.
        self._handshaking: Counter[str] = Counter()
        # The writers of those handshakes, oldest first (evicted first when full).
        self._pending: dict[asyncio.StreamWriter, str] = {}
        # Local (host, port) of our outbound connections still in their handshake: an
        # inbound connection from one of them is this node dialing itself.
        self._dialing_from: set[tuple[str, int]] = set()
        self._peers: dict[bytes, Peer] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def listen_port(self) -> int:
        """The bound port (useful after listening on port 0)."""
        return self._listen_port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_inbound, self._listen_host, self._listen_port
        )
        self._listen_port = self._server.sockets[0].getsockname()[1]
        log.info("p2p listening on %s:%d", self._listen_host, self._listen_port)
        for host, port in self._dial_addresses:
            self._spawn(self._dial_loop(host, port))
        self._spawn(self._keepalive_loop())

    async def stop(self) -> None:
        """Close the listener and every session, and wait for all tasks to finish."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        while self._tasks:
            for peer in list(self._peers.values()):
                peer.close("stopping")
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending -----------------------------------------------------------------------

    def connected_peers(self) -> list[bytes]:
        return sorted(self._peers)

    def queued_frames(self, peer_key: bytes) -> int:
        """Frames waiting to be written to a peer (0 if not connected), for metrics."""
        peer = self._peers.get(peer_key)
        return 0 if peer is None else peer.queued_frames

    def send(self, peer_key: bytes, msg_type: int, payload: Any, droppable: bool = False) -> bool:
        """Queue one message for one peer; False if not connected or dropped.
        Gossip passes `droppable=True` so it gives way to consensus messages when full;
        a payload may be a list, so one frame can carry a batch. Raises MessageTooLarge."""
        peer = self._peers.get(peer_key)
        if peer is None:
            return False
        return peer.send_frame(
            encode_body(msg_type, payload, self.params.max_frame_bytes), droppable
        )

    def broadcast(
        self,
        msg_type: int,
        payload: Any,
        exclude: Iterable[bytes] | None = None,
        droppable: bool = False,
        behind_droppable: bool = False,
    ) -> int:
        """Queue one message (encoded once) for every connected peer not in `exclude`;
        return how many peers it was queued for. Raises MessageTooLarge.
        `behind_droppable`: it goes out after the gossip queued before it
        (`SendQueue.put`)."""
        frame = encode_body(msg_type, payload, self.params.max_frame_bytes)
        skip = set(exclude or ())
        return sum(
            peer.send_frame(frame, droppable, behind_droppable=behind_droppable)
            for key, peer in list(self._peers.items())
            if key not in skip
        )

    def refresh_admission(self) -> None:
        """Close sessions with peers no longer admitted (call after the registry changes)."""
        for key, peer in list(self._peers.items()):
            if not self._is_admitted_safely(key):
                log.info("peer %s: no longer admitted, disconnecting", key.hex()[:16])
                peer.close("not_admitted")

    # -- connections -------------------------------------------------------------------

    def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept callback: the session runs on a task this manager owns and cancels."""
        if self._stopping:
            writer.transport.abort()
            return
        peername = writer.get_extra_info("peername")
        host = str(peername[0]) if peername else "?"
        address = f"{host}:{peername[1]}" if peername else "?"
        # Strangers get a bounded share of the node. When the handshakes in progress
        # from this address, or in all, are at their cap, the oldest gives way: an honest
        # handshake takes milliseconds, so whoever holds slots idle loses them first, and
        # a flood of silent connections cannot lock honest peers out.
        params = self.params
        if self._handshaking[host] >= params.max_pending_handshakes_per_address:
            self._evict_oldest(host)
        elif len(self._pending) >= params.max_pending_handshakes:
            self._evict_oldest(None)
        self._pending[writer] = host
        self._handshaking[host] += 1
        self._spawn(self._run_connection(reader, writer, False, address, writer))

    def _evict_oldest(self, host: str | None) -> None:
        for writer, pending_host in self._pending.items():
            if host is None or pending_host == host:
                self._end_pending(writer)
                writer.transport.abort()
                self.counters.refused["too_many_handshakes"] += 1
                log.debug("p2p: dropped a pending handshake from %s (caps full)", pending_host)
                return

    def _end_pending(self, writer: asyncio.StreamWriter) -> None:
        host = self._pending.pop(writer, None)
        if host is not None:
            self._handshaking[host] -= 1
            if self._handshaking[host] <= 0:
                del self._handshaking[host]

    async def _run_connection(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        outbound: bool,
        address: str,
        pending: asyncio.StreamWriter | None = None,
    ) -> SessionOutcome:
        """Handshake, then serve the session to its end."""
        _bound_retransmission(writer, self.params.idle_timeout)
        try:
            peer = await self._handshake(reader, writer, outbound, address)
            self._admit(peer)
        except HandshakeRefused as exc:
            writer.transport.abort()
            return self._refuse(exc, address)
        finally:
            if pending is not None:
                self._end_pending(pending)
        try:
            reason = await peer.run(self._dispatch)
        finally:
            if self._peers.get(peer.key) is peer:
                del self._peers[peer.key]
                self._notify(self._on_disconnected, peer.key)
            self.counters.disconnects[peer.close_reason or "stopping"] += 1
        log.info("peer %s (%s): session ended: %s", peer.key.hex()[:16], address, reason)
        return SessionOutcome(peer.key, True, None)

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        outbound: bool,
        address: str,
    ) -> Peer:
        local = _address_of(writer.get_extra_info("sockname"))
        remote = _address_of(writer.get_extra_info("peername"))
        if outbound and local is not None:
            self._dialing_from.add(local)
        try:
            async with asyncio.timeout(self.params.handshake_timeout):
                identity, channel = await secret_handshake(
                    reader,
                    writer,
                    outbound=outbound,
                    chain_id=self.chain_id,
                    node_key=self.node_key,
                    listen_port=self._listen_port,
                    is_admitted=self._is_admitted_safely,
                    answer_self=lambda: not outbound and remote in self._dialing_from,
                    hello_timeout=self.params.hello_timeout,
                )
        except TimeoutError as exc:
            raise HandshakeRefused("handshake deadline passed", "timeout") from exc
        except (ConnectionError, OSError) as exc:
            raise HandshakeRefused(f"connection failed: {exc}", "closed") from exc
        finally:
            if outbound and local is not None:
                self._dialing_from.discard(local)
        return Peer(
            identity, channel, outbound, address, reader, writer, self.params, self.counters
        )

    def _is_admitted_safely(self, public_key: bytes) -> bool:
        """A failing registry lookup refuses the peer instead of killing the dialer."""
        try:
            return self._is_admitted(public_key)
        except Exception:
            log.exception("p2p: is_admitted failed for %s", public_key.hex()[:16])
            return False

    def _admit(self, peer: Peer) -> None:
        """Keep one session per peer: the one dialed by the lower key wins on both ends;
        between two dialed by the same side, the newer wins (the older is likely dead)."""
        existing = self._peers.get(peer.key)
        if existing is not None:
            # The existing session is the preferred one: refuse the newcomer.
            if self._is_preferred(existing) and not self._is_preferred(peer):
                raise HandshakeRefused("already connected", "duplicate", peer.key)
            del self._peers[peer.key]
            existing.close("replaced")
            self._notify(self._on_disconnected, peer.key)
        self._peers[peer.key] = peer
        self.counters.sessions += 1
        log.info(
            "peer %s (%s, %s): connected",
            peer.key.hex()[:16],
            peer.address,
            "outbound" if peer.outbound else "inbound",
        )
        self._notify(self._on_connected, peer.key)

    def _is_preferred(self, peer: Peer) -> bool:
        initiator = self.public_key if peer.outbound else peer.key
        return initiator == min(self.public_key, peer.key)

    def _refuse(self, exc: HandshakeRefused, address: str) -> SessionOutcome:
        """Count and log a refusal. Only a duplicate's key is authenticated, so only it
        is passed on to the dialer."""
        self.counters.refused[exc.code] += 1
        claimed = exc.peer_key.hex()[:16] if exc.peer_key else "unknown key"
        # Duplicates are routine when two nodes dial each other at once.
        level = logging.INFO if exc.code == "duplicate" else logging.WARNING
        log.log(level, "p2p: refused %s (%s): %s: %s", address, claimed, exc.code, exc)
        return SessionOutcome(exc.peer_key if exc.code == "duplicate" else None, False, exc.code)

    async def _dispatch(self, peer_key: bytes, msg_type: int, payload: Any) -> None:
        try:
            result = self._on_message(peer_key, msg_type, payload)
            if inspect.isawaitable(result):
                await result
        except (FrameError, CodecError):
            raise
        except Exception:
            self.counters.handler_errors += 1
            log.exception(
                "p2p: handler for message %d from %s failed", msg_type, peer_key.hex()[:16]
            )

    def _notify(self, callback: OnPeer, peer_key: bytes) -> None:
        try:
            callback(peer_key)
        except Exception:
            self.counters.handler_errors += 1
            log.exception("p2p: peer callback for %s failed", peer_key.hex()[:16])

    # -- dialing and keepalive ---------------------------------------------------------

    async def _dial_loop(self, host: str, port: int) -> None:
        """Keep a session with the peer at host:port, redialing with backoff. While a
        session with the same key exists (e.g. the one it dialed us on), wait."""
        attempt = 0
        known_key: bytes | None = None
        while True:
            if known_key is not None:
                await self._wait_session_end(known_key)
            outcome = await self._dial_once(host, port)
            known_key = outcome.peer_key or known_key
            attempt = 0 if outcome.established else attempt + 1
            if outcome.refusal == "self":
                # Never for good: a reflection on the path can look like this too.
                log.info("p2p: %s:%d is this node itself; trying again later", host, port)
                attempt = max(attempt, 32)
            await asyncio.sleep(compute_backoff(attempt, self.params, self._rng))

    async def _dial_once(self, host: str, port: int) -> SessionOutcome:
        address = f"{host}:{port}"
        try:
            async with asyncio.timeout(self.params.connect_timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            log.debug("p2p: cannot connect to %s: %s", address, exc)
            return SessionOutcome(None, False, "unreachable")
        return await self._run_connection(reader, writer, True, address)

    async def _wait_session_end(self, peer_key: bytes) -> None:
        while (peer := self._peers.get(peer_key)) is not None:
            await peer.closed.wait()
            # Yield so the session's owner can drop it before we look again.
            await asyncio.sleep(0)

    async def _keepalive_loop(self) -> None:
        """Ping every peer each interval; close sessions silent for too long (a peer
        whose host vanished without closing TCP)."""
        ping = encode_body(MSG_PING, None, self.params.max_frame_bytes)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.params.ping_interval)
            now = loop.time()
            for peer in list(self._peers.values()):
                if now - peer.last_received > self.params.idle_timeout:
                    log.warning("peer %s: silent too long, disconnecting", peer.key.hex()[:16])
                    peer.close("idle")
                else:
                    peer.send_frame(ping, droppable=True)


def _bound_retransmission(writer: asyncio.StreamWriter, timeout_s: float) -> None:
    """TCP gives up on data unacknowledged for `timeout_s` (Linux TCP_USER_TIMEOUT): a
    link cut mid-write ends the session instead of backing off retransmissions for
    minutes, and the dial loop reconnects once the link is back."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is None or option is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, int(timeout_s * 1000))
