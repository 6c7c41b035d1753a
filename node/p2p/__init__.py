"""Permissioned P2P: an authenticated, encrypted session per peer over TCP (a
station-to-station handshake, `node.p2p.secure`) admitting only registered node keys,
length-prefixed msgpack frames sealed with ChaCha20-Poly1305, a bounded send queue per
peer, reconnect with backoff, and little spent on a stranger before it is authenticated.

The node builds a `PeerManager`, registers its message types on a `MessageRouter`
(types from `FIRST_APP_MESSAGE_TYPE` up) and calls `send` / `broadcast`.
"""

from node.p2p.counters import P2PCounters
from node.p2p.errors import FrameError, HandshakeRefused, MessageTooLarge, P2PError
from node.p2p.framing import FIRST_APP_MESSAGE_TYPE, MAX_MESSAGE_TYPE
from node.p2p.manager import PeerManager
from node.p2p.params import P2PParams
from node.p2p.router import MessageRouter

__all__ = [
    "FIRST_APP_MESSAGE_TYPE",
    "MAX_MESSAGE_TYPE",
    "FrameError",
    "HandshakeRefused",
    "MessageRouter",
    "MessageTooLarge",
    "P2PCounters",
    "P2PError",
    "P2PParams",
    "PeerManager",
]
