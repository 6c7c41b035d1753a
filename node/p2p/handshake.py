"""The handshake: each side proves it holds the node key it claims, for this chain.

Both sides send `hello = [version, chain_id, public_key, listen_port | None, challenge]`,
then `auth = signature` over `compute_auth_root(chain_id, peer_challenge, own, peer)`.
Signing the peer's fresh challenge and both keys means an auth can be neither replayed
on another connection nor relayed by a man in the middle with a different key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ledger.codec import expect_bytes, expect_int, expect_list, expect_str, pack
from ledger.constants import DOMAIN_HANDSHAKE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ledger.crypto import PrivateKey, signing_root, verify_root
from ledger.errors import CodecError
from node.p2p.errors import FrameError, HandshakeRefused
from node.p2p.framing import MSG_AUTH, MSG_HELLO, decode_message, encode_frame, read_frame

PROTOCOL_VERSION: Final = 1
CHALLENGE_BYTES: Final = 32
MAX_CHAIN_ID_BYTES: Final = 128


@dataclass(frozen=True, slots=True)
class Hello:
    version: int
    chain_id: str
    public_key: bytes
    listen_port: int | None
    challenge: bytes

    def to_obj(self) -> list[Any]:
        return [self.version, self.chain_id, self.public_key, self.listen_port, self.challenge]

    @staticmethod
    def from_obj(obj: Any) -> Hello:
        try:
            fields = expect_list(obj, 5, "hello")
            port = fields[3]
            return Hello(
                version=expect_int(fields[0], 0, 2**32, "hello version"),
                chain_id=expect_str(fields[1], MAX_CHAIN_ID_BYTES, "hello chain id"),
                public_key=expect_bytes(fields[2], PUBLIC_KEY_SIZE, "hello public key"),
                listen_port=None if port is None else expect_int(port, 1, 65535, "port"),
                challenge=expect_bytes(fields[4], CHALLENGE_BYTES, "hello challenge"),
            )
        except CodecError as exc:
            raise HandshakeRefused(f"bad hello: {exc}", "malformed_hello") from exc


def compute_auth_root(chain_id: str, challenge: bytes, signer: bytes, verifier: bytes) -> bytes:
    """What `signer` signs to answer `verifier`'s challenge."""
    return signing_root(DOMAIN_HANDSHAKE, pack([chain_id, challenge, signer, verifier]))


def check_hello(
    hello: Hello, chain_id: str, own_key: bytes, is_admitted: Callable[[bytes], bool]
) -> None:
    """Refuse a peer before answering its challenge: nothing is signed for strangers."""
    # Same wire protocol.
    if hello.version != PROTOCOL_VERSION:
        raise HandshakeRefused(
            f"protocol version {hello.version}", "wrong_version", hello.public_key
        )
    # Same network.
    if hello.chain_id != chain_id:
        raise HandshakeRefused(f"chain id {hello.chain_id!r}", "wrong_chain", hello.public_key)
    # Not a connection to ourselves (a peer list that names our own address).
    if hello.public_key == own_key:
        raise HandshakeRefused("connected to itself", "self", hello.public_key)
    # A node registered in the ledger.
    if not is_admitted(hello.public_key):
        raise HandshakeRefused("key is not registered", "not_admitted", hello.public_key)


async def perform_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    own: Hello,
    node_key: PrivateKey,
    is_admitted: Callable[[bytes], bool],
    max_frame_bytes: int,
) -> Hello:
    """Run both steps on a fresh connection; return the authenticated peer's hello.
    The caller bounds it with a deadline. Raises HandshakeRefused."""
    writer.write(encode_frame(MSG_HELLO, own.to_obj(), max_frame_bytes))
    await writer.drain()
    peer = Hello.from_obj(await _read_message(reader, MSG_HELLO, max_frame_bytes))
    check_hello(peer, own.chain_id, own.public_key, is_admitted)
    root = compute_auth_root(own.chain_id, peer.challenge, own.public_key, peer.public_key)
    writer.write(encode_frame(MSG_AUTH, node_key.sign_root(root), max_frame_bytes))
    await writer.drain()
    signature = await _read_message(reader, MSG_AUTH, max_frame_bytes)
    expected = compute_auth_root(own.chain_id, own.challenge, peer.public_key, own.public_key)
    # The peer holds the private key of the public key it claims.
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise HandshakeRefused("auth is not a signature", "malformed_auth", peer.public_key)
    if not verify_root(peer.public_key, expected, signature):
        raise HandshakeRefused("auth signature does not verify", "bad_signature", peer.public_key)
    return peer


async def _read_message(reader: asyncio.StreamReader, expected: int, max_bytes: int) -> Any:
    try:
        msg_type, payload = decode_message(await read_frame(reader, max_bytes), max_bytes)
    except FrameError as exc:
        raise HandshakeRefused(f"bad handshake frame: {exc}", "malformed_hello") from exc
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise HandshakeRefused("connection closed during handshake", "closed") from exc
    if msg_type != expected:
        raise HandshakeRefused(f"expected message {expected}, got {msg_type}", "unexpected")
    return payload
