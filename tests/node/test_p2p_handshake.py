"""The secret connection (node/p2p/secure.py) over a socket pair: who proves what, what a
relay or a tamperer gets, and how the frame ciphers refuse altered, replayed or
reordered frames."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ledger.codec import pack
from ledger.crypto import PrivateKey
from node.p2p.errors import HandshakeRefused
from node.p2p.framing import MSG_AUTH, MSG_HELLO
from node.p2p.secure import (
    MAX_HELLO_BYTES,
    PROTOCOL_VERSION,
    ChannelBroken,
    FrameCipher,
    PeerIdentity,
    SecretChannel,
    compute_auth_root,
    derive_channel,
    secret_handshake,
)
from tests.attack.harness import auth_body, old_protocol_hello, plain_frame

CHAIN = "bakong-test"
ME = PrivateKey.from_seed(b"\x01" * 32)
PEER = PrivateKey.from_seed(b"\x02" * 32)
OTHER = PrivateKey.from_seed(b"\x03" * 32)

Side = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, Any]]


def honest(
    key: PrivateKey,
    outbound: bool,
    admitted: set[bytes] | None = None,
    chain: str = CHAIN,
    answer_self: bool = False,
) -> Side:
    async def side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        return await secret_handshake(
            reader,
            writer,
            outbound=outbound,
            chain_id=chain,
            node_key=key,
            listen_port=26656 if not outbound else None,
            is_admitted=(
                admitted if admitted is not None else {ME.public_key, PEER.public_key}
            ).__contains__,
            answer_self=lambda: answer_self,
        )

    return side


def pair(first: Side, second: Side) -> tuple[Any, Any]:
    """Run two sides against each other over a socket pair; each result or exception."""

    async def main() -> tuple[Any, Any]:
        a, b = socket.socketpair()
        ra, wa = await asyncio.open_connection(sock=a)
        rb, wb = await asyncio.open_connection(sock=b)

        async def run(side: Side, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
            try:
                return await side(r, w)
            finally:
                w.transport.abort()

        try:
            async with asyncio.timeout(5):
                results = await asyncio.gather(
                    run(first, ra, wa), run(second, rb, wb), return_exceptions=True
                )
        finally:
            wa.close()
            wb.close()
        return results[0], results[1]

    return asyncio.run(main())


def code_of(result: Any) -> str:
    assert isinstance(result, HandshakeRefused), result
    return result.code


def test_basic() -> None:
    dialer, listener = pair(honest(ME, True), honest(PEER, False))
    assert isinstance(dialer, tuple) and isinstance(listener, tuple)
    (d_peer, d_channel), (l_peer, l_channel) = dialer, listener
    assert d_peer == PeerIdentity(CHAIN, PEER.public_key, 26656)
    assert l_peer == PeerIdentity(CHAIN, ME.public_key, None)
    # Both ends derived one session, with crossed directions.
    assert d_channel.session_id == l_channel.session_id
    sealed = d_channel.seal(b"hello")
    assert l_channel.receiver.open(sealed[:4], sealed[4:]) == b"hello"


def test_invalid_not_admitted_listener_signs_nothing() -> None:
    sent: list[bytes] = []

    async def listener_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        original = writer.write

        def record(data: bytes) -> None:
            sent.append(data)
            original(data)

        writer.write = record  # type: ignore[method-assign]
        return await honest(PEER, False)(reader, writer)

    dialer, listener = pair(honest(OTHER, True), listener_side)
    assert code_of(listener) == "not_admitted"
    assert code_of(dialer) == "closed"
    # The stranger got our hello (an ephemeral key) and nothing signed.
    assert len(sent) == 1 and len(sent[0]) < 64


def test_invalid_wrong_chain() -> None:
    dialer, listener = pair(honest(ME, True, chain="another"), honest(PEER, False))
    assert code_of(listener) == "wrong_chain"
    assert code_of(dialer) == "closed"


def test_invalid_listener_not_admitted_by_dialer() -> None:
    dialer, _ = pair(honest(ME, True, admitted={OTHER.public_key}), honest(PEER, False))
    assert code_of(dialer) == "not_admitted"


def test_invalid_self_is_detected_on_both_ends() -> None:
    # The manager passes answer_self when the connection comes from its own socket.
    dialer, listener = pair(honest(ME, True), honest(ME, False, answer_self=True))
    assert code_of(dialer) == "self"
    assert code_of(listener) == "self"


def test_invalid_reflected_self_auth_is_not_answered() -> None:
    """Someone on the path crossing our dialer's and listener's hellos makes both share
    a session: the listener sees its own key but not its own socket, and says nothing
    (an answer would be a listener auth for the reflector to use)."""
    dialer, listener = pair(honest(ME, True), honest(ME, False, answer_self=False))
    assert code_of(listener) == "self"
    assert code_of(dialer) == "closed"


async def _hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> SecretChannel:
    secret = X25519PrivateKey.generate()
    public = secret.public_key().public_bytes_raw()
    writer.write(plain_frame(pack([MSG_HELLO, [PROTOCOL_VERSION, public]])))
    await writer.drain()
    length = int.from_bytes(await reader.readexactly(4), "big")
    from ledger.codec import unpack

    peer_eph = unpack(await reader.readexactly(length))[1][1]
    return derive_channel(secret, public, peer_eph)


def forger(claimed: bytes, signer: PrivateKey, role: str = "dialer") -> Side:
    async def side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        channel = await _hello(reader, writer)
        signature = signer.sign_root(compute_auth_root(CHAIN, channel.session_id, role))
        writer.write(channel.seal(auth_body(CHAIN, claimed, signature)))
        await writer.drain()
        await reader.read()

    return side


def test_invalid_claimed_key_signed_by_another() -> None:
    _, listener = pair(forger(ME.public_key, OTHER), honest(PEER, False))
    assert code_of(listener) == "bad_signature"


def test_invalid_signature_for_the_other_role() -> None:
    # A listener's auth reflected back as a dialer's never verifies.
    _, listener = pair(forger(ME.public_key, ME, role="listener"), honest(PEER, False))
    assert code_of(listener) == "bad_signature"


def test_invalid_relayed_signature_from_another_session() -> None:
    """The old relay attack: get the victim's signature in one session and present it
    in another. Signatures cover the session id, which differs."""
    stolen: list[bytes] = []

    async def victim_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        channel = await _hello(reader, writer)
        stolen.append(ME.sign_root(compute_auth_root(CHAIN, channel.session_id, "dialer")))
        writer.transport.abort()

    pair(victim_session, honest(PEER, False))

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        channel = await _hello(reader, writer)
        writer.write(channel.seal(auth_body(CHAIN, ME.public_key, stolen[0])))
        await writer.drain()
        await reader.read()

    _, listener = pair(relay, honest(PEER, False))
    assert code_of(listener) == "bad_signature"


def test_invalid_old_protocol_hello_is_refused_by_version() -> None:
    async def old_node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        writer.write(old_protocol_hello(CHAIN, ME, 26656))
        await writer.drain()
        await reader.read()

    _, listener = pair(old_node, honest(PEER, False))
    assert code_of(listener) == "wrong_version"
    assert "protocol 1" in str(listener)


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ((MAX_HELLO_BYTES + 1).to_bytes(4, "big"), "malformed_hello"),  # too big: not read
        ((16 << 20).to_bytes(4, "big") + b"\0" * 1000, "malformed_hello"),
        (b"\x00\x00\x00\x00", "malformed_hello"),
        (plain_frame(b"\xc1"), "malformed_hello"),
        (plain_frame(pack([MSG_AUTH, [2, b"k" * 32]])), "unexpected"),
        (plain_frame(pack([MSG_HELLO, [2, b"short"]])), "malformed_hello"),
        (plain_frame(pack([MSG_HELLO, [2, b"k" * 32, "extra"]])), "malformed_hello"),
        (plain_frame(pack([MSG_HELLO, "not a list"])), "malformed_hello"),
        (plain_frame(pack([MSG_HELLO, [3, b"k" * 32]])), "wrong_version"),
        (plain_frame(pack([MSG_HELLO, [2, b"\0" * 32]])), "bad_ephemeral"),  # low order
    ],
)
def test_invalid_first_frame(first: bytes, code: str) -> None:
    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        writer.write(first)
        await writer.drain()
        await reader.read()

    _, listener = pair(junk, honest(PEER, False))
    assert code_of(listener) == code


def test_invalid_reflected_hello() -> None:
    async def mirror(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        length = int.from_bytes(await reader.readexactly(4), "big")
        body = await reader.readexactly(length)
        writer.write(plain_frame(body))
        await writer.drain()
        await reader.read()

    _, listener = pair(mirror, honest(PEER, False))
    assert code_of(listener) == "bad_ephemeral"


def test_invalid_auth_sealed_with_other_keys() -> None:
    async def wrong_keys(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        await _hello(reader, writer)
        other = derive_channel(
            X25519PrivateKey.generate(),
            b"\x09" * 32,
            X25519PrivateKey.generate().public_key().public_bytes_raw(),
        )
        writer.write(other.seal(auth_body(CHAIN, ME.public_key, b"s" * 64)))
        await writer.drain()
        await reader.read()

    _, listener = pair(wrong_keys, honest(PEER, False))
    assert code_of(listener) == "bad_auth"


def test_invalid_malformed_auth() -> None:
    async def bad_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        channel = await _hello(reader, writer)
        writer.write(channel.seal(pack([MSG_AUTH, [CHAIN, b"short", None, b"s" * 64]])))
        await writer.drain()
        await reader.read()

    _, listener = pair(bad_auth, honest(PEER, False))
    assert code_of(listener) == "malformed_auth"


def test_invalid_peer_hangs_up() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        writer.transport.abort()

    _, listener = pair(rude, honest(PEER, False))
    assert code_of(listener) == "closed"


# The frame ciphers.


def ciphers() -> tuple[FrameCipher, FrameCipher]:
    key = b"\x05" * 32
    return FrameCipher(key), FrameCipher(key)


def test_frames_open_in_order() -> None:
    sender, receiver = ciphers()
    frames = [sender.seal(bytes([i]) * i) for i in range(5)]
    assert [receiver.open(f[:4], f[4:]) for f in frames] == [bytes([i]) * i for i in range(5)]


def test_invalid_replayed_frame() -> None:
    sender, receiver = ciphers()
    frame = sender.seal(b"pay 1")
    receiver.open(frame[:4], frame[4:])
    with pytest.raises(ChannelBroken):
        receiver.open(frame[:4], frame[4:])


def test_invalid_reordered_frames() -> None:
    sender, receiver = ciphers()
    first, second = sender.seal(b"one"), sender.seal(b"two")
    with pytest.raises(ChannelBroken):
        receiver.open(second[:4], second[4:])
    del first


@pytest.mark.parametrize("position", [0, 3, 4, 10, -1])
def test_invalid_tampered_byte(position: int) -> None:
    sender, receiver = ciphers()
    frame = bytearray(sender.seal(b"transfer 100 KHR"))
    frame[position] ^= 0x01
    with pytest.raises(ChannelBroken):
        receiver.open(bytes(frame[:4]), bytes(frame[4:]))


def test_channel_read_refuses_oversize_without_reading() -> None:
    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data((1 << 24).to_bytes(4, "big"))
        channel = SecretChannel(*ciphers(), session_id=b"s" * 32)
        with pytest.raises(ChannelBroken) as err:
            await channel.read(reader, 1024)
        assert err.value.code == "oversize"

    asyncio.run(main())
