"""The secret connection: an authenticated, encrypted channel between two nodes.

A station-to-station handshake in the manner of CometBFT's SecretConnection, built from
`cryptography`'s primitives (X25519, HKDF-SHA256, ChaCha20-Poly1305); nothing here is
hand-made cryptography, only the protocol that composes them.

1. Both sides send one small plain frame, `[MSG_HELLO, [PROTOCOL_VERSION, eph]]`, where
   `eph` is a fresh X25519 public key. Nothing else is readable by an eavesdropper.
2. Both compute `shared = X25519(own_eph, peer_eph)` and derive with HKDF-SHA256
   (salt = the sorted pair of ephemeral keys) a key for each direction and a 32-byte
   session id. From here on every frame is sealed (step 4).
3. The dialer sends a sealed `[MSG_AUTH, [chain_id, node_key, listen_port, sig]]` where
   `sig` is the dialer's node-key signature over `(version, chain_id, session_id,
   "dialer")`. The listener checks the chain, that the key is admitted (registered in the
   ledger) and the signature, and only then answers with its own auth (role "listener").
   A listener thus signs nothing for a stranger, and the dialer only for the address it
   chose to dial.
4. A sealed frame is a 4-byte big-endian length, then `ChaCha20-Poly1305(key, nonce =
   counter, body, aad = length)`. Each direction counts its frames from 0, so a frame
   that is dropped, replayed, reordered or altered fails to open, and the session ends.

Why this binds the session to the connection: the signatures cover the session id, which
only the two ends of this key exchange know. A relay or man in the middle runs a separate
exchange with each side, so the ids differ and a signature passed along never verifies;
it cannot read or forge frames either, having neither side's ephemeral secret.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.codec import expect_bytes, expect_int, expect_list, expect_str, pack, unpack
from ledger.constants import DOMAIN_HANDSHAKE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ledger.crypto import PrivateKey, signing_root, verify_root
from ledger.errors import CodecError
from node.p2p.errors import FrameError, HandshakeRefused
from node.p2p.framing import HEADER_BYTES, MSG_AUTH, MSG_HELLO, encode_frame

PROTOCOL_VERSION: Final = 2
EPHEMERAL_KEY_BYTES: Final = 32
TAG_BYTES: Final = 16
SESSION_ID_BYTES: Final = 32
MAX_CHAIN_ID_BYTES: Final = 128
# Frames before authentication are tiny: a hello is ~40 bytes (an old v1 hello ~230),
# an auth ~250. Nothing bigger is read from a stranger, and nothing is skipped.
MAX_HELLO_BYTES: Final = 320
MAX_AUTH_BYTES: Final = 512
_HKDF_INFO: Final = b"bakong-sim/p2p/secret-connection/v2"
_MAX_COUNTER: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What the handshake proved about the other end."""

    chain_id: str
    public_key: bytes
    listen_port: int | None


def compute_auth_root(chain_id: str, session_id: bytes, role: str) -> bytes:
    """What a side signs with its node key: this chain, this session, its own role."""
    return signing_root(DOMAIN_HANDSHAKE, pack([PROTOCOL_VERSION, chain_id, session_id, role]))


class FrameCipher:
    """One direction of a session: ChaCha20-Poly1305 with an implicit frame counter."""

    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def _next_nonce(self) -> bytes:
        counter = self._counter
        if counter >= _MAX_COUNTER:
            raise FrameError("frame counter exhausted", "counter_exhausted")
        self._counter = counter + 1
        return b"\0\0\0\0" + counter.to_bytes(8, "little")

    def seal(self, body: bytes) -> bytes:
        """The wire bytes of one frame body: length header, then ciphertext and tag."""
        header = (len(body) + TAG_BYTES).to_bytes(HEADER_BYTES, "big")
        return header + self._aead.encrypt(self._next_nonce(), body, header)

    def open(self, header: bytes, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._next_nonce(), sealed, header)
        except InvalidTag as exc:
            raise ChannelBroken("a frame failed authentication", "bad_mac") from exc


class ChannelBroken(FrameError):
    """The encrypted stream can no longer be trusted (a frame failed to open, or is
    longer than allowed): unlike a bad frame from an honest peer, it ends the session."""

    code = "channel_broken"


@dataclass(slots=True)
class SecretChannel:
    """Both directions of an established session."""

    sender: FrameCipher
    receiver: FrameCipher
    session_id: bytes

    def seal(self, body: bytes) -> bytes:
        return self.sender.seal(body)

    async def read(self, reader: asyncio.StreamReader, max_body_bytes: int) -> bytes:
        """Read and open one frame. A frame longer than `max_body_bytes` is not read:
        the session ends (its counter could not be kept in step anyway).
        Raises ChannelBroken, or asyncio.IncompleteReadError at end of stream."""
        header = await reader.readexactly(HEADER_BYTES)
        length = int.from_bytes(header, "big")
        if length > max_body_bytes + TAG_BYTES:
            raise ChannelBroken(f"sealed frame of {length} bytes", "oversize")
        if length < TAG_BYTES:
            raise ChannelBroken(f"sealed frame of {length} bytes", "short")
        return self.receiver.open(header, await reader.readexactly(length))


def derive_channel(own_secret: X25519PrivateKey, own_eph: bytes, peer_eph: bytes) -> SecretChannel:
    """The session keys from one X25519 exchange. Raises HandshakeRefused on a degenerate
    peer key (a low-order point gives an all-zero secret) or a reflected hello."""
    if peer_eph == own_eph:
        raise HandshakeRefused("peer sent our own ephemeral key back", "bad_ephemeral")
    try:
        shared = own_secret.exchange(X25519PublicKey.from_public_bytes(peer_eph))
    except ValueError as exc:
        raise HandshakeRefused(f"unusable ephemeral key: {exc}", "bad_ephemeral") from exc
    low, high = sorted((own_eph, peer_eph))
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=64 + SESSION_ID_BYTES,
        salt=hashlib.sha256(low + high).digest(),
        info=_HKDF_INFO,
    ).derive(shared)
    low_to_high, high_to_low, session_id = okm[:32], okm[32:64], okm[64:]
    if own_eph == low:
        return SecretChannel(FrameCipher(low_to_high), FrameCipher(high_to_low), session_id)
    return SecretChannel(FrameCipher(high_to_low), FrameCipher(low_to_high), session_id)


async def _read_plain_hello(reader: asyncio.StreamReader) -> bytes:
    """The peer's ephemeral key from its hello; an old or foreign protocol is refused
    with a code that says so."""
    header = await reader.readexactly(HEADER_BYTES)
    length = int.from_bytes(header, "big")
    if not 0 < length <= MAX_HELLO_BYTES:
        raise HandshakeRefused(f"first frame of {length} bytes is not a hello", "malformed_hello")
    try:
        obj = unpack(await reader.readexactly(length), MAX_HELLO_BYTES)
        msg_type, payload = expect_list(obj, 2, "hello frame")
        if msg_type != MSG_HELLO:
            raise HandshakeRefused(f"expected a hello, got message {msg_type!r}", "unexpected")
        fields = expect_list(payload, None, "hello")
        version = fields[0] if fields else None
        if version != PROTOCOL_VERSION:
            raise HandshakeRefused(
                f"peer speaks P2P protocol {version!r}; this node speaks "
                f"{PROTOCOL_VERSION} (encrypted, authenticated sessions)",
                "wrong_version",
            )
        expect_list(payload, 2, "hello")
        return expect_bytes(fields[1], EPHEMERAL_KEY_BYTES, "hello ephemeral key")
    except (CodecError, ValueError, TypeError) as exc:
        raise HandshakeRefused(f"bad hello: {exc}", "malformed_hello") from exc


async def _read_auth(reader: asyncio.StreamReader, channel: SecretChannel) -> list[Any]:
    try:
        body = await channel.read(reader, MAX_AUTH_BYTES)
    except ChannelBroken as exc:
        # A peer that derived other keys: another protocol, or someone in the middle.
        raise HandshakeRefused(f"auth frame does not open: {exc}", "bad_auth") from exc
    try:
        msg_type, payload = expect_list(unpack(body, MAX_AUTH_BYTES), 2, "auth frame")
        if msg_type != MSG_AUTH:
            raise HandshakeRefused(f"expected an auth, got message {msg_type!r}", "unexpected")
        return expect_list(payload, 4, "auth")
    except (CodecError, ValueError, TypeError) as exc:
        raise HandshakeRefused(f"bad auth: {exc}", "malformed_auth") from exc


def check_auth(
    fields: list[Any],
    channel: SecretChannel,
    role: str,
    chain_id: str,
    own_key: bytes,
    is_admitted: Callable[[bytes], bool],
) -> PeerIdentity:
    """Accept the peer's auth, or raise HandshakeRefused saying why. Cheap checks first:
    the signature is verified only for an admitted key of this chain."""
    try:
        peer_chain = expect_str(fields[0], MAX_CHAIN_ID_BYTES, "auth chain id")
        peer_key = expect_bytes(fields[1], PUBLIC_KEY_SIZE, "auth node key")
        port = fields[2]
        listen_port = None if port is None else expect_int(port, 1, 65535, "auth listen port")
        signature = expect_bytes(fields[3], SIGNATURE_SIZE, "auth signature")
    except CodecError as exc:
        raise HandshakeRefused(f"bad auth: {exc}", "malformed_auth") from exc
    # Same network.
    if peer_chain != chain_id:
        raise HandshakeRefused(f"chain id {peer_chain!r}", "wrong_chain", peer_key)
    # A node registered in the ledger (our own key is, when it is a validator's).
    if peer_key != own_key and not is_admitted(peer_key):
        raise HandshakeRefused("key is not registered", "not_admitted", peer_key)
    # It holds that key, and signed this very session in its role.
    root = compute_auth_root(chain_id, channel.session_id, role)
    if not verify_root(peer_key, root, signature):
        raise HandshakeRefused("auth signature does not verify", "bad_signature", peer_key)
    # Not a connection to ourselves (a peer list that names our own address): only we
    # can have signed this session with our key.
    if peer_key == own_key:
        raise HandshakeRefused("connected to itself", "self", peer_key)
    return PeerIdentity(peer_chain, peer_key, listen_port)


def _auth_frame(
    channel: SecretChannel, chain_id: str, node_key: PrivateKey, port: int | None, role: str
) -> bytes:
    signature = node_key.sign_root(compute_auth_root(chain_id, channel.session_id, role))
    body = pack([MSG_AUTH, [chain_id, node_key.public_key, port, signature]])
    return channel.seal(body)


async def secret_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    outbound: bool,
    chain_id: str,
    node_key: PrivateKey,
    listen_port: int | None,
    is_admitted: Callable[[bytes], bool],
    ephemeral: X25519PrivateKey | None = None,
    answer_self: Callable[[], bool] = lambda: False,
    hello_timeout: float | None = None,
) -> tuple[PeerIdentity, SecretChannel]:
    """Run the handshake on a fresh connection (the caller bounds it with a deadline).
    Returns the authenticated peer and the channel; raises HandshakeRefused.

    A listener that finds its own key in the dialer's auth answers it only if
    `answer_self()`: the caller knows the connection comes from one of its own outbound
    sockets (asked then, when that dialer has surely registered its socket), and the
    dialer learns it dialed itself. Otherwise it is a reflection: someone on the path
    crossed our own dialer's and listener's hellos, which makes both connections share
    one session; answering would hand the reflector a listener auth."""
    secret = ephemeral or X25519PrivateKey.generate()
    own_eph = secret.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    try:
        writer.write(encode_frame(MSG_HELLO, [PROTOCOL_VERSION, own_eph], MAX_HELLO_BYTES))
        await writer.drain()
        # The first bytes are due at once: a connection that sends nothing holds a
        # handshake slot for `hello_timeout` at most (TimeoutError to the caller).
        async with asyncio.timeout(hello_timeout):
            peer_eph = await _read_plain_hello(reader)
        channel = derive_channel(secret, own_eph, peer_eph)
        own_key = node_key.public_key
        if outbound:
            writer.write(_auth_frame(channel, chain_id, node_key, listen_port, "dialer"))
            await writer.drain()
            fields = await _read_auth(reader, channel)
            peer = check_auth(fields, channel, "listener", chain_id, own_key, is_admitted)
        else:
            fields = await _read_auth(reader, channel)
            try:
                peer = check_auth(fields, channel, "dialer", chain_id, own_key, is_admitted)
            except HandshakeRefused as exc:
                if exc.code == "self" and answer_self():
                    # Our own dialer, on our own socket: answer, so it learns and backs off.
                    writer.write(_auth_frame(channel, chain_id, node_key, listen_port, "listener"))
                    await writer.drain()
                raise
            writer.write(_auth_frame(channel, chain_id, node_key, listen_port, "listener"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise HandshakeRefused("connection closed during handshake", "closed") from exc
    return peer, channel
