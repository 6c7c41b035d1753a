"""Tunables of the P2P layer, with defaults suited to a local testnet."""

from __future__ import annotations

import random
from dataclasses import dataclass

from node.config import P2PConfig


@dataclass(frozen=True, slots=True)
class P2PParams:
    # Largest frame body accepted or sent; blocks of thousands of txs must fit.
    max_frame_bytes: int = 16 * 1024 * 1024
    # A connection that delivered this many bad frames is closed.
    max_bad_frames: int = 16
    # Seconds to complete the hello/auth exchange after TCP connects, and to receive the
    # peer's hello (its first frame) within that.
    handshake_timeout: float = 5.0
    hello_timeout: float = 1.0
    # Inbound connections still in their handshake (unauthenticated): at most this many
    # in all and from one source address; beyond that the oldest one is closed.
    max_pending_handshakes: int = 64
    max_pending_handshakes_per_address: int = 16
    # Seconds to wait for a TCP connect to a configured peer.
    connect_timeout: float = 2.0
    # Per-peer send queue bounds (frames and bytes).
    send_queue: int = 10_000
    send_queue_bytes: int = 256 * 1024 * 1024
    # The writer flushes after at most this many bytes, then drains once.
    write_batch_bytes: int = 1024 * 1024
    # Reconnect delay: reconnect_min * 2**attempt, capped at reconnect_max, with jitter.
    reconnect_min: float = 0.2
    reconnect_max: float = 2.0
    # Every peer gets a ping this often; one silent for idle_timeout is closed (and TCP
    # gives up retransmitting unacked data after as long: TCP_USER_TIMEOUT).
    ping_interval: float = 1.0
    idle_timeout: float = 5.0

    @staticmethod
    def from_config(config: P2PConfig) -> P2PParams:
        return P2PParams(
            max_frame_bytes=config.max_frame_bytes,
            send_queue=config.send_queue,
            handshake_timeout=config.handshake_timeout_ms / 1000,
            max_pending_handshakes=config.max_pending_handshakes,
            max_pending_handshakes_per_address=config.max_pending_handshakes_per_address,
            ping_interval=config.ping_interval_ms / 1000,
            idle_timeout=config.dead_peer_timeout_ms / 1000,
            connect_timeout=config.connect_timeout_ms / 1000,
            reconnect_max=config.redial_max_ms / 1000,
        )


def compute_backoff(attempt: int, params: P2PParams, rng: random.Random) -> float:
    """Delay before reconnect attempt `attempt` (0 = first retry): exponential, capped,
    with full-range jitter in [delay/2, delay] so restarted nodes do not redial in lockstep."""
    delay = min(params.reconnect_max, params.reconnect_min * (1 << min(attempt, 32)))
    return delay * (0.5 + 0.5 * rng.random())
