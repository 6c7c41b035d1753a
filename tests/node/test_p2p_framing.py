"""Frames: length prefix, size limit, and the strict `[type, payload]` shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import pack
from node.p2p.errors import FrameError, MessageTooLarge
from node.p2p.framing import decode_message, encode_frame, read_frame

LIMIT = 1024


def read_all(data: bytes, limit: int = LIMIT) -> list[bytes | str]:
    """Read frames from `data` until it ends: bodies, or the code of each FrameError."""

    async def main() -> list[bytes | str]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        out: list[bytes | str] = []
        while True:
            try:
                out.append(await read_frame(reader, limit))
            except FrameError as exc:
                out.append(exc.code)
            except asyncio.IncompleteReadError:
                return out

    return asyncio.run(main())


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def test_basic() -> None:
    frames = encode_frame(16, [1, b"tx", "memo"], LIMIT) + encode_frame(17, None, LIMIT)
    bodies = read_all(frames)
    assert [decode_message(b, LIMIT) for b in bodies if isinstance(b, bytes)] == [
        (16, [1, b"tx", "memo"]),
        (17, None),
    ]


def test_invalid_oversize_on_send() -> None:
    with pytest.raises(MessageTooLarge):
        encode_frame(16, b"x" * LIMIT, LIMIT)


def test_invalid_oversize_frame_is_skipped() -> None:
    data = framed(b"y" * (LIMIT + 1)) + encode_frame(16, "next", LIMIT)
    result = read_all(data)
    assert result[0] == "oversize"
    assert decode_message(result[1], LIMIT) == (16, "next")  # type: ignore[arg-type]


def test_invalid_empty_frame() -> None:
    assert read_all(b"\x00\x00\x00\x00") == ["empty"]


def test_invalid_truncated_frame_ends_stream() -> None:
    assert read_all(encode_frame(16, "cut", LIMIT)[:-1]) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xc1", "malformed"),
        (b"\x92\x10", "malformed"),
        (pack([16, 1]) + b"\x00", "malformed"),
        (pack({"a": 1}), "wrong_shape"),
        (pack([16]), "wrong_shape"),
        (pack([16, 1, 2]), "wrong_shape"),
        (pack(["16", 1]), "wrong_shape"),
        (pack([True, 1]), "wrong_shape"),
        (pack([-1, 1]), "wrong_shape"),
        (pack([2**16, 1]), "wrong_shape"),
    ],
)
def test_invalid_message_shape(body: bytes, code: str) -> None:
    with pytest.raises(FrameError) as err:
        decode_message(body, LIMIT)
    assert err.value.code == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_body_is_a_message_or_frame_error(body: bytes) -> None:
    try:
        msg_type, _ = decode_message(body, LIMIT)
    except FrameError:
        return
    assert 0 <= msg_type < 2**16


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_stream_never_raises_unexpected(data: bytes) -> None:
    for item in read_all(data, 64):
        assert isinstance(item, bytes | str)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**16 - 1),
            st.recursive(
                st.none()
                | st.integers(0, 2**64 - 1)
                | st.binary(max_size=16)
                | st.text(max_size=8),
                lambda inner: st.lists(inner, max_size=4),
                max_leaves=8,
            ),
        ),
        max_size=5,
    )
)
def test_round_trip(messages: list[tuple[int, Any]]) -> None:
    data = b"".join(encode_frame(t, p, LIMIT) for t, p in messages)
    decoded = [decode_message(b, LIMIT) for b in read_all(data) if isinstance(b, bytes)]
    assert decoded == messages


@pytest.mark.parametrize(
    "payload",
    [
        # a million empty arrays in one: 1 MB on the wire, ~64 MB decoded
        b"\xdd" + (1_000_000).to_bytes(4, "big") + b"\x90" * 1_000_000,
        # as many arrays, each under the length limit, over the count
        b"\xdd" + (90_000).to_bytes(4, "big") + (b"\x9b" + b"\x90" * 11) * 90_000,
        pack({"a": 1}),  # a map
    ],
    ids=["long_array", "many_arrays", "map"],
)
def test_invalid_message_that_would_decode_far_beyond_its_size(payload: bytes) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(FrameError):
            decode_message(b"\x92\x10" + payload, 16 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(payload) + 1_000_000, peak
