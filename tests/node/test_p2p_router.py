"""The message-type registry the node fills with its handlers."""

from __future__ import annotations

from typing import Any

import pytest

from node.p2p import FIRST_APP_MESSAGE_TYPE, FrameError, MessageRouter, P2PError

T = FIRST_APP_MESSAGE_TYPE


def test_basic() -> None:
    router = MessageRouter()
    got: list[tuple[str, bytes, Any]] = []
    router.register(T, lambda peer, payload: got.append(("a", peer, payload)))
    router.register(T + 1, lambda peer, payload: got.append(("b", peer, payload)))
    router(b"p", T + 1, [1])
    router(b"q", T, None)
    assert got == [("b", b"p", [1]), ("a", b"q", None)]


def test_invalid_reserved_type() -> None:
    with pytest.raises(P2PError):
        MessageRouter().register(T - 1, lambda peer, payload: None)


def test_invalid_type_out_of_range() -> None:
    with pytest.raises(P2PError):
        MessageRouter().register(2**16, lambda peer, payload: None)


def test_invalid_duplicate_registration() -> None:
    router = MessageRouter()
    router.register(T, lambda peer, payload: None)
    with pytest.raises(P2PError):
        router.register(T, lambda peer, payload: None)


def test_invalid_unknown_type() -> None:
    with pytest.raises(FrameError) as err:
        MessageRouter()(b"p", T, None)
    assert err.value.code == "unknown_type"
