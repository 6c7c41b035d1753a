"""Errors of the P2P layer; each carries a stable `code` used in logs and metrics labels."""

from __future__ import annotations

from node.errors import NodeError


class P2PError(NodeError):
    """Base of every P2P error. `code` is stable: it labels refusal and drop counters."""

    code = "p2p_error"


class FrameError(P2PError):
    """A frame that cannot be used: oversize, not msgpack, or not `[type, payload]`."""

    code = "bad_frame"


class MessageTooLarge(P2PError):
    """Our own message would exceed the frame limit (every peer would drop it). Kept
    apart from FrameError so a handler's oversize reply is never blamed on the peer."""

    code = "message_too_large"


class HandshakeRefused(P2PError):
    """The handshake failed; `code` says why (wrong_chain, not_admitted, bad_signature, ...).
    `peer_key` is the key the peer claimed, when it got that far (for logs)."""

    code = "refused"

    def __init__(
        self, message: str = "", code: str | None = None, peer_key: bytes | None = None
    ) -> None:
        super().__init__(message, code)
        self.peer_key = peer_key
