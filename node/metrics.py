"""Prometheus text exposition of the node's counters, gauges and histograms (no globals)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total:.6f}")
        lines.append(f"{name}_count {self.count}")
        return lines


@dataclass(slots=True)
class Metrics:
    committed_txs: int = 0
    committed_blocks: int = 0
    received_txs: int = 0
    refused_txs: dict[str, int] = field(default_factory=dict)
    block_interval: Histogram = field(default_factory=Histogram)
    commit_latency: Histogram = field(default_factory=Histogram)
    synced_blocks: int = 0
    # Peers' proposals dropped before their block was looked at, by reason.
    dropped_proposals: dict[str, int] = field(default_factory=dict)

    def refuse(self, code: str) -> None:
        self.refused_txs[code] = self.refused_txs.get(code, 0) + 1

    def drop_proposal(self, reason: str) -> None:
        self.dropped_proposals[reason] = self.dropped_proposals.get(reason, 0) + 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    metrics: Metrics,
    *,
    node: str,
    height: int,
    round_: int,
    mempool_size: int,
    peers: int,
    rejections: dict[str, int],
    p2p_counters: dict[str, int],
    evidence: int = 0,
    mempool_queued: int = 0,
    labelled: dict[str, tuple[str, str, dict[str, int]]] | None = None,
) -> str:
    """`labelled` maps a counter's name to (help text, label name, {label: value})."""
    """The whole /metrics page."""
    out: list[str] = []

    def gauge(name: str, help_text: str, value: int, kind: str = "gauge") -> None:
        out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"])

    gauge("bakong_height", "Height of the last committed block.", height)
    gauge("bakong_round", "Consensus round at the current height.", round_)
    gauge("bakong_mempool_size", "Transactions waiting in the mempool.", mempool_size)
    gauge(
        "bakong_mempool_queued",
        "Pending transactions behind a nonce gap (not executable yet).",
        mempool_queued,
    )
    gauge("bakong_peers", "Connected, authenticated peers.", peers)
    gauge(
        "bakong_evidence_total",
        "Equivocations seen (conflicting signed votes).",
        evidence,
        "counter",
    )
    gauge("bakong_committed_txs_total", "Transactions committed.", metrics.committed_txs, "counter")
    gauge("bakong_blocks_total", "Blocks committed.", metrics.committed_blocks, "counter")
    gauge(
        "bakong_synced_blocks_total",
        "Blocks applied by block sync.",
        metrics.synced_blocks,
        "counter",
    )
    gauge(
        "bakong_received_txs_total",
        "Transactions accepted from clients.",
        metrics.received_txs,
        "counter",
    )
    out.append("# HELP bakong_rejected_txs_total Transactions rejected, by reason code.")
    out.append("# TYPE bakong_rejected_txs_total counter")
    merged = dict(rejections)
    for code, n in metrics.refused_txs.items():
        merged[code] = merged.get(code, 0) + n
    for code, n in sorted(merged.items()):
        out.append(f'bakong_rejected_txs_total{{code="{_escape(code)}"}} {n}')
    out.append(
        "# HELP bakong_dropped_proposals_total Peers' proposals dropped before their block "
        "was judged, by reason."
    )
    out.append("# TYPE bakong_dropped_proposals_total counter")
    for reason, n in sorted(metrics.dropped_proposals.items()):
        out.append(f'bakong_dropped_proposals_total{{reason="{_escape(reason)}"}} {n}')
    for name, (help_text, label, values) in sorted((labelled or {}).items()):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} counter")
        for key, n in sorted(values.items()):
            out.append(f'{name}{{{label}="{_escape(key)}"}} {n}')
    out.append("# HELP bakong_p2p_events_total Peer-to-peer events, by kind.")
    out.append("# TYPE bakong_p2p_events_total counter")
    for kind, n in sorted(p2p_counters.items()):
        out.append(f'bakong_p2p_events_total{{kind="{_escape(kind)}"}} {n}')
    out.extend(
        metrics.block_interval.render(
            "bakong_block_interval_seconds", "Time between consecutive committed blocks."
        )
    )
    out.extend(
        metrics.commit_latency.render(
            "bakong_commit_latency_seconds",
            "Time from a tx's admission to its commit on this node.",
        )
    )
    out.append(
        f"# HELP bakong_node_info Node identity.\n# TYPE bakong_node_info gauge\n"
        f'bakong_node_info{{node="{_escape(node)}"}} 1'
    )
    return "\n".join(out) + "\n"
