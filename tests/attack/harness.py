"""An attacker's toolkit against real nodes: hand-driven P2P sessions that can say
anything a hostile peer or a stranger on the network could.

- `dial` runs the real handshake as a dialer with any key (registered or not) and gives a
  `RawSession` that seals whatever bodies the test chooses, or writes raw bytes.
- `forged_dial` claims one key while signing with another.
- `old_protocol_hello` is what a node of the previous (plaintext, v1) protocol sends.
- `Relay` sits between two parties: transparently (forwarding bytes, optionally
  tampering), or actively, running its own key exchange with each side and passing the
  victim's authentication on.
- `flood_unauthenticated` opens many keyless connections that each start a huge frame.

Every helper closes its sockets on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ledger.codec import pack, unpack
from ledger.crypto import PrivateKey
from node.p2p.framing import HEADER_BYTES, MSG_AUTH, MSG_HELLO
from node.p2p.secure import (
    PROTOCOL_VERSION,
    PeerIdentity,
    SecretChannel,
    compute_auth_root,
    derive_channel,
    secret_handshake,
)

HOST = "127.0.0.1"


def plain_frame(body: bytes) -> bytes:
    return len(body).to_bytes(HEADER_BYTES, "big") + body


@dataclass
class RawSession:
    """An established session driven by hand."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    channel: SecretChannel
    peer: PeerIdentity | None

    async def send_body(self, body: bytes) -> None:
        self.writer.write(self.channel.seal(body))
        await self.writer.drain()

    async def send(self, msg_type: int, payload: Any) -> None:
        await self.send_body(pack([msg_type, payload]))

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self, max_bytes: int = 1 << 25) -> tuple[int, Any]:
        body = await self.channel.read(self.reader, max_bytes)
        msg_type, payload = unpack(body, max_bytes)
        return msg_type, payload

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True once the other end hung up (reading and discarding what it sends)."""
        async with asyncio.timeout(timeout):
            while await self.reader.read(65536):
                pass
        return True


def _ephemeral() -> tuple[X25519PrivateKey, bytes]:
    secret = X25519PrivateKey.generate()
    public = secret.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return secret, public


@contextlib.asynccontextmanager
async def dial(
    port: int, key: PrivateKey, chain_id: str, host: str = HOST
) -> AsyncIterator[RawSession]:
    """A session with the node at host:port, authenticated with `key` (the node decides
    whether it admits it). Raises HandshakeRefused if the handshake fails on our side."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            peer, channel = await secret_handshake(
                reader,
                writer,
                outbound=True,
                chain_id=chain_id,
                node_key=key,
                listen_port=None,
                is_admitted=lambda _key: True,
            )
        yield RawSession(reader, writer, channel, peer)
    finally:
        writer.transport.abort()


async def _hello_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> SecretChannel:
    secret, public = _ephemeral()
    writer.write(plain_frame(pack([MSG_HELLO, [PROTOCOL_VERSION, public]])))
    await writer.drain()
    length = int.from_bytes(await reader.readexactly(HEADER_BYTES), "big")
    _, payload = unpack(await reader.readexactly(length))
    return derive_channel(secret, public, payload[1])


def auth_body(
    chain_id: str, claimed: bytes, signature: bytes, listen_port: int | None = None
) -> bytes:
    return pack([MSG_AUTH, [chain_id, claimed, listen_port, signature]])


@contextlib.asynccontextmanager
async def forged_dial(
    port: int, claimed: bytes, signer: PrivateKey, chain_id: str, host: str = HOST
) -> AsyncIterator[RawSession]:
    """Dial claiming `claimed` as our node key, signing the session with `signer`."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        channel = await _hello_exchange(reader, writer)
        signature = signer.sign_root(compute_auth_root(chain_id, channel.session_id, "dialer"))
        writer.write(channel.seal(auth_body(chain_id, claimed, signature)))
        await writer.drain()
        yield RawSession(reader, writer, channel, None)
    finally:
        writer.transport.abort()


def old_protocol_hello(chain_id: str, key: PrivateKey, listen_port: int | None = None) -> bytes:
    """The first frame a node of P2P protocol v1 sends (plaintext hello with a challenge)."""
    return plain_frame(pack([MSG_HELLO, [1, chain_id, key.public_key, listen_port, b"\x07" * 32]]))


class _Listener:
    """A server on 127.0.0.1 whose connection handlers are tasks it cancels on stop."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._on_client, HOST, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class ActiveRelay(_Listener):
    """A man in the middle: listens where a victim dials it, and for each connection
    from the victim dials the target, running its own key exchange with both. It passes
    the victim's auth (chain, key, signature) on to the target unchanged, which is all a
    relay without the victim's key can do. Records what happened."""

    def __init__(self, target_port: int, chain_id: str) -> None:
        super().__init__(target_port)
        self.chain_id = chain_id
        self.victim_auths = 0
        self.target_outcomes: list[str] = []

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(self._relay(reader, writer))

    async def _relay(self, v_reader: asyncio.StreamReader, v_writer: asyncio.StreamWriter) -> None:
        t_writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(10):
                # The victim dials us: we are its "listener"; it authenticates first.
                v_channel = await _hello_exchange(v_reader, v_writer)
                body = await v_channel.read(v_reader, 4096)
                _, (chain, claimed, port, signature) = unpack(body)
                self.victim_auths += 1
                # Pass the victim's identity and signature on to the target.
                t_reader, t_writer = await asyncio.open_connection(HOST, self.target_port)
                t_channel = await _hello_exchange(t_reader, t_writer)
                t_writer.write(t_channel.seal(auth_body(chain, claimed, signature, port)))
                await t_writer.drain()
                try:
                    await t_channel.read(t_reader, 4096)
                    self.target_outcomes.append("accepted")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.target_outcomes.append("refused")
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            self.target_outcomes.append("error")
        finally:
            v_writer.transport.abort()
            if t_writer is not None:
                t_writer.transport.abort()


class TransparentRelay(_Listener):
    """A TCP proxy between a dialer and a listener that forwards every byte, and can be
    told to inject bytes into the stream toward the listener (a frame of its own, or a
    replayed one): it cannot read the session, and anything it adds must break it."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.to_target = self._writers
        self.seen_to_target: list[bytes] = []

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(self._connect(reader, writer))

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t_reader, t_writer = await asyncio.open_connection(HOST, self.target_port)
        self.to_target.append(t_writer)
        self._spawn(self._pipe(reader, t_writer, record=True))
        self._spawn(self._pipe(t_reader, writer, record=False))

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool
    ) -> None:
        try:
            while data := await src.read(65536):
                if record:
                    self.seen_to_target.append(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.transport.abort()

    async def inject(self, data: bytes) -> None:
        """Write `data` into the newest live connection toward the listener."""
        writer = next(w for w in reversed(self.to_target) if not w.is_closing())
        writer.write(data)
        await writer.drain()


async def flood_unauthenticated(
    port: int, connections: int, frame_bytes: int, host: str = HOST
) -> list[asyncio.StreamWriter]:
    """Open `connections` keyless connections; on each announce a first frame of
    `frame_bytes` and send as much of it as the node will take. Returns the writers (the
    caller aborts them)."""
    writers: list[asyncio.StreamWriter] = []
    chunk = b"\x00" * 65536
    for _ in range(connections):
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            continue
        writers.append(writer)
        writer.write(frame_bytes.to_bytes(HEADER_BYTES, "big"))
    # Push body bytes for as long as the node reads them (or until each frame is sent).
    sent = [0] * len(writers)
    for _ in range(frame_bytes // len(chunk) + 1):
        for i, writer in enumerate(writers):
            if writer.is_closing() or sent[i] >= frame_bytes:
                continue
            writer.write(chunk)
            sent[i] += len(chunk)
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(2.0):
                await asyncio.gather(*(w.drain() for w in writers if not w.is_closing()))
        except (ConnectionError, OSError):
            continue
        except TimeoutError:
            break  # the node stopped reading without closing: nothing more goes in
    return writers
