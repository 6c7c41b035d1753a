"""What the P2P layer counts, for `GET /metrics` and for tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class P2PCounters:
    """Running totals, mutated in place by the layer (the one mutable container here,
    because metrics read it live). Labelled counts are keyed by a stable error code."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    sessions: int = 0
    handler_errors: int = 0
    # Frames dropped: oversize, malformed, wrong_shape, empty, protocol, queue_full.
    dropped: Counter[str] = field(default_factory=Counter)
    # Connections refused: wrong_chain, not_admitted, bad_signature, self, duplicate, ...
    refused: Counter[str] = field(default_factory=Counter)
    # Sessions ended: closed, bad_frames, idle, slow_peer, replaced, not_admitted, stopping.
    disconnects: Counter[str] = field(default_factory=Counter)
