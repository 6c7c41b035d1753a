"""The handshake: hello checks, the auth root, and `perform_handshake` against a
hand-driven peer on a socket pair."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from ledger.crypto import PrivateKey, verify_root
from node.p2p.errors import HandshakeRefused
from node.p2p.framing import MSG_AUTH, MSG_HELLO, decode_message, encode_frame, read_frame
from node.p2p.handshake import (
    PROTOCOL_VERSION,
    Hello,
    check_hello,
    compute_auth_root,
    perform_handshake,
)

CHAIN = "bakong-test"
LIMIT = 1 << 20
ME = PrivateKey.from_seed(b"\x01" * 32)
PEER = PrivateKey.from_seed(b"\x02" * 32)


def hello_of(key: PrivateKey, **changes: Any) -> Hello:
    fields: dict[str, Any] = {
        "version": PROTOCOL_VERSION,
        "chain_id": CHAIN,
        "public_key": key.public_key,
        "listen_port": 26656,
        "challenge": os.urandom(32),
    }
    return Hello(**(fields | changes))


def refusal_code(hello: Hello, admitted: set[bytes] | None = None) -> str:
    allowed = {PEER.public_key} if admitted is None else admitted
    with pytest.raises(HandshakeRefused) as err:
        check_hello(hello, CHAIN, ME.public_key, allowed.__contains__)
    return err.value.code


def test_basic() -> None:
    hello = hello_of(PEER)
    assert Hello.from_obj(hello.to_obj()) == hello
    assert Hello.from_obj(hello_of(PEER, listen_port=None).to_obj()).listen_port is None
    check_hello(hello, CHAIN, ME.public_key, {PEER.public_key}.__contains__)
    root = compute_auth_root(CHAIN, hello.challenge, ME.public_key, PEER.public_key)
    assert verify_root(ME.public_key, root, ME.sign_root(root))


def test_invalid_wrong_version() -> None:
    assert refusal_code(hello_of(PEER, version=PROTOCOL_VERSION + 1)) == "wrong_version"


def test_invalid_wrong_chain() -> None:
    assert refusal_code(hello_of(PEER, chain_id="other")) == "wrong_chain"


def test_invalid_self() -> None:
    assert refusal_code(hello_of(ME), {ME.public_key}) == "self"


def test_invalid_not_admitted() -> None:
    assert refusal_code(hello_of(PEER), set()) == "not_admitted"


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        [1, CHAIN, b"k" * 32, None],
        [1, CHAIN, b"k" * 31, None, b"c" * 32],
        [1, CHAIN, b"k" * 32, None, b"c" * 31],
        [1, CHAIN, b"k" * 32, 0, b"c" * 32],
        [1, CHAIN, b"k" * 32, 70000, b"c" * 32],
        [1, b"chain", b"k" * 32, None, b"c" * 32],
        [1, "x" * 200, b"k" * 32, None, b"c" * 32],
        ["1", CHAIN, b"k" * 32, None, b"c" * 32],
    ],
)
def test_invalid_malformed_hello(obj: Any) -> None:
    with pytest.raises(HandshakeRefused) as err:
        Hello.from_obj(obj)
    assert err.value.code == "malformed_hello"


def test_auth_root_binds_every_field() -> None:
    base = (CHAIN, b"c" * 32, ME.public_key, PEER.public_key)
    variants = [
        ("other", *base[1:]),
        (CHAIN, b"d" * 32, *base[2:]),
        (CHAIN, b"c" * 32, PEER.public_key, ME.public_key),
    ]
    roots = {compute_auth_root(*base), *(compute_auth_root(*v) for v in variants)}
    assert len(roots) == 4


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Hello], Coroutine[Any, Any, None]]


def handshake_against(script: Script) -> Hello:
    """Run `perform_handshake` as ME against a peer driven by `script`."""

    async def main() -> Hello:
        a, b = socket.socketpair()
        mine = await asyncio.open_connection(sock=a)
        theirs = await asyncio.open_connection(sock=b)
        own = hello_of(ME)
        peer_task = asyncio.create_task(script(*theirs, own))
        try:
            admitted = {PEER.public_key}.__contains__
            return await perform_handshake(*mine, own, ME, admitted, LIMIT)
        finally:
            mine[1].close()
            theirs[1].close()
            await asyncio.gather(peer_task, return_exceptions=True)

    return asyncio.run(main())


async def next_payload(reader: asyncio.StreamReader) -> Any:
    return decode_message(await read_frame(reader, LIMIT), LIMIT)[1]


def honest_peer(sign_with: PrivateKey = PEER, swap_challenge: bool = False) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Hello) -> None:
        hello = hello_of(PEER)
        writer.write(encode_frame(MSG_HELLO, hello.to_obj(), LIMIT))
        their = Hello.from_obj(await next_payload(reader))
        challenge = hello.challenge if swap_challenge else their.challenge
        root = compute_auth_root(CHAIN, challenge, PEER.public_key, ME.public_key)
        writer.write(encode_frame(MSG_AUTH, sign_with.sign_root(root), LIMIT))
        await writer.drain()
        await next_payload(reader)

    return script


def refused_by(script: Script) -> str:
    with pytest.raises(HandshakeRefused) as err:
        handshake_against(script)
    return err.value.code


def test_perform_handshake_basic() -> None:
    assert handshake_against(honest_peer()).public_key == PEER.public_key


def test_invalid_auth_by_another_key() -> None:
    assert refused_by(honest_peer(sign_with=PrivateKey.from_seed(b"\x03" * 32))) == "bad_signature"


def test_invalid_auth_replayed_for_another_challenge() -> None:
    assert refused_by(honest_peer(swap_challenge=True)) == "bad_signature"


def test_invalid_auth_not_a_signature() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Hello) -> None:
        writer.write(encode_frame(MSG_HELLO, hello_of(PEER).to_obj(), LIMIT))
        writer.write(encode_frame(MSG_AUTH, b"short", LIMIT))
        await writer.drain()
        await next_payload(reader)

    assert refused_by(script) == "malformed_auth"


def test_invalid_auth_before_hello() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Hello) -> None:
        writer.write(encode_frame(MSG_AUTH, b"s" * 64, LIMIT))
        await writer.drain()

    assert refused_by(script) == "unexpected"


def test_invalid_junk_instead_of_hello() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Hello) -> None:
        writer.write(b"\x00\x00\x00\x01\xc1")
        await writer.drain()

    assert refused_by(script) == "malformed_hello"


def test_invalid_peer_hangs_up() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Hello) -> None:
        writer.close()

    assert refused_by(script) == "closed"
