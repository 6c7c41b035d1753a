"""Frames on the wire: a 4-byte big-endian length, then a canonical msgpack body.

A body is the message `[type, payload]`. Only the first frame of a connection (the
hello) travels plain; every later one is sealed by the session (`node.p2p.secure`).
Types below `FIRST_APP_MESSAGE_TYPE` belong to the P2P layer itself (handshake,
keepalive); the node registers its own types above it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from ledger.codec import pack, unpack
from ledger.errors import CodecError
from node.p2p.errors import FrameError, MessageTooLarge

HEADER_BYTES: Final = 4
MAX_MESSAGE_TYPE: Final = 2**16 - 1

MSG_HELLO: Final = 0
MSG_AUTH: Final = 1
MSG_PING: Final = 2
FIRST_APP_MESSAGE_TYPE: Final = 16

_SKIP_CHUNK: Final = 64 * 1024
# What a peer's message may hold, far above any real message (a sync reply is about 50
# arrays, a tx batch one array of up to 10,000 items); keeps decoding near the frame size.
MAX_ARRAYS_PER_MESSAGE: Final = 4096
MAX_ARRAY_LEN: Final = 100_000


def encode_body(msg_type: int, payload: Any, max_frame_bytes: int) -> bytes:
    """The frame body of one message, before a session seals it. Raises MessageTooLarge
    if it would exceed the limit, since every peer would drop it."""
    body = pack([msg_type, payload])
    if len(body) > max_frame_bytes:
        raise MessageTooLarge(f"message of {len(body)} bytes exceeds {max_frame_bytes}")
    return body


def encode_frame(msg_type: int, payload: Any, max_frame_bytes: int) -> bytes:
    """The plain wire bytes of one message (length header and body)."""
    body = encode_body(msg_type, payload, max_frame_bytes)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


async def read_frame(reader: asyncio.StreamReader, max_frame_bytes: int) -> bytes:
    """Read one frame body. An oversize frame is skipped without buffering it and
    reported as FrameError, so the stream stays aligned on the next frame.
    Raises asyncio.IncompleteReadError at end of stream."""
    header = await reader.readexactly(HEADER_BYTES)
    length = int.from_bytes(header, "big")
    if length > max_frame_bytes:
        await _skip(reader, length)
        raise FrameError(f"frame of {length} bytes exceeds {max_frame_bytes}", "oversize")
    if length == 0:
        raise FrameError("empty frame", "empty")
    return await reader.readexactly(length)


async def _skip(reader: asyncio.StreamReader, length: int) -> None:
    while length > 0:
        chunk = await reader.read(min(length, _SKIP_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(chunk)


def decode_message(body: bytes, max_frame_bytes: int) -> tuple[int, Any]:
    """Split a frame body into `(type, payload)`; anything else is a FrameError."""
    try:
        obj = unpack(
            body,
            max_frame_bytes,
            max_arrays=MAX_ARRAYS_PER_MESSAGE,
            max_array_len=MAX_ARRAY_LEN,
            allow_maps=False,
        )
    except CodecError as exc:
        # a map or an extension type is msgpack, just not a message
        code = "wrong_shape" if exc.code == "wrong_type" else "malformed"
        raise FrameError(f"undecodable frame: {exc}", code) from exc
    # A message is exactly [type, payload].
    if not isinstance(obj, list) or len(obj) != 2:
        raise FrameError("a message is [type, payload]", "wrong_shape")
    msg_type = obj[0]
    # The type is a small non-negative integer.
    if type(msg_type) is not int or not 0 <= msg_type <= MAX_MESSAGE_TYPE:
        raise FrameError(f"bad message type {msg_type!r}", "wrong_shape")
    return msg_type, obj[1]
