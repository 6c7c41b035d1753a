"""The open registry of message types: the node registers one handler per type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from node.p2p.errors import FrameError, P2PError
from node.p2p.framing import FIRST_APP_MESSAGE_TYPE, MAX_MESSAGE_TYPE

Handler = Callable[[bytes, Any], Awaitable[None] | None]


class MessageRouter:
    """Pass an instance as `PeerManager(on_message=...)`. A handler gets
    `(peer_key, payload)`; it raises FrameError or CodecError for a malformed payload,
    which counts as a bad frame from that peer."""

    def __init__(self) -> None:
        self._handlers: dict[int, Handler] = {}

    def register(self, msg_type: int, handler: Handler) -> None:
        # Types below FIRST_APP_MESSAGE_TYPE belong to the P2P layer.
        if not FIRST_APP_MESSAGE_TYPE <= msg_type <= MAX_MESSAGE_TYPE:
            raise P2PError(f"message type {msg_type} is reserved or out of range", "bad_type")
        # One handler per type, so a typo cannot silently steal another's messages.
        if msg_type in self._handlers:
            raise P2PError(f"message type {msg_type} already has a handler", "bad_type")
        self._handlers[msg_type] = handler

    def __call__(self, peer_key: bytes, msg_type: int, payload: Any) -> Awaitable[None] | None:
        handler = self._handlers.get(msg_type)
        if handler is None:
            raise FrameError(f"no handler for message type {msg_type}", "unknown_type")
        return handler(peer_key, payload)
