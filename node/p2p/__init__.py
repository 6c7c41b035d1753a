"""Permissioned P2P: length-prefixed msgpack frames over TCP, a signed-challenge
handshake admitting only registered node keys, one session per peer with a bounded
send queue, reconnect with backoff.

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
