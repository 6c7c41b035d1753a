"""The node's counters, gauges and histograms, exposed through prometheus_client: one
CollectorRegistry per node (no globals), read from the node at each scrape."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# Waits of a few milliseconds up to the cap (a tenth of the propose timeout).
SHORT_WAIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25)


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


@dataclass(slots=True)
class Metrics:
    committed_txs: int = 0
    committed_blocks: int = 0
    received_txs: int = 0
    refused_txs: dict[str, int] = field(default_factory=dict)
    block_interval: Histogram = field(default_factory=Histogram)
    commit_latency: Histogram = field(default_factory=Histogram)
    synced_blocks: int = 0
    # Gossiped tx batches a follower ignored, and blocks it executed on a certificate.
    ignored_gossip_batches: int = 0
    trusted_blocks: int = 0
    # Shared verification of gossip (node/attest.py): batches this validator attested,
    # admitted on f+1 vouchers, or verified itself after waiting; attestations from
    # peers that are no validators.
    attested_batches: int = 0
    vouched_batches: int = 0
    unvouched_batches: int = 0
    ignored_attestations: int = 0
    # Peers' proposals dropped before their block was looked at, by reason.
    dropped_proposals: dict[str, int] = field(default_factory=dict)
    # Compact proposals this node could not assemble, so it asked for the full block:
    # "missing_txs" (it held not all of them), "tx_root" (it held other variants).
    fetched_proposals: dict[str, int] = field(default_factory=dict)
    # Compact proposals whose judging waited for the held txs they named, and how long
    # each waited.
    awaited_proposals: int = 0
    awaited_wait: Histogram = field(default_factory=lambda: Histogram(SHORT_WAIT_BUCKETS_S))

    def refuse(self, code: str) -> None:
        self.refused_txs[code] = self.refused_txs.get(code, 0) + 1

    def drop_proposal(self, reason: str) -> None:
        self.dropped_proposals[reason] = self.dropped_proposals.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape of /metrics shows, read from the node when it is scraped."""

    metrics: Metrics
    node: str
    height: int
    round_: int
    mempool_size: int
    peers: int
    rejections: dict[str, int]
    p2p_counters: dict[str, int]
    evidence: int = 0
    mempool_queued: int = 0
    # counter name -> (help text, label name, {label: value})
    labelled: dict[str, tuple[str, str, dict[str, int]]] = field(default_factory=dict)


def _counter(name: str, help_text: str, value: int) -> CounterMetricFamily:
    # prometheus_client appends `_total` to a counter family's name
    return CounterMetricFamily(name.removesuffix("_total"), help_text, value=value)


def _labelled(name: str, help_text: str, label: str, values: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


def _histogram(name: str, help_text: str, histogram: Histogram) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, n in zip(histogram.buckets, histogram.counts, strict=True):
        cumulative += n
        buckets.append((str(bound), cumulative))
    buckets.append(("+Inf", histogram.count))
    return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=histogram.total)


def collect(snap: Snapshot) -> list[Metric]:
    """Every metric family of the node, names and labels as documented."""
    m = snap.metrics
    merged = dict(snap.rejections)
    for code, n in m.refused_txs.items():
        merged[code] = merged.get(code, 0) + n
    out: list[Metric] = [
        GaugeMetricFamily("bakong_height", "Height of the last committed block.", snap.height),
        GaugeMetricFamily("bakong_round", "Consensus round at the current height.", snap.round_),
        GaugeMetricFamily(
            "bakong_mempool_size", "Transactions waiting in the mempool.", snap.mempool_size
        ),
        GaugeMetricFamily(
            "bakong_mempool_queued",
            "Pending transactions behind a nonce gap (not executable yet).",
            snap.mempool_queued,
        ),
        GaugeMetricFamily("bakong_peers", "Connected, authenticated peers.", snap.peers),
        _counter(
            "bakong_evidence_total", "Equivocations seen (conflicting signed votes).", snap.evidence
        ),
        _counter("bakong_committed_txs_total", "Transactions committed.", m.committed_txs),
        _counter("bakong_blocks_total", "Blocks committed.", m.committed_blocks),
        _counter("bakong_synced_blocks_total", "Blocks applied by block sync.", m.synced_blocks),
        _counter(
            "bakong_trusted_blocks_total",
            "Blocks a follower executed on their commit certificate, signatures not rechecked.",
            m.trusted_blocks,
        ),
        _counter(
            "bakong_ignored_gossip_batches_total",
            "Gossiped tx batches a follower ignored (it takes txs from blocks).",
            m.ignored_gossip_batches,
        ),
        _counter(
            "bakong_attested_batches_total",
            "Gossiped tx batches this validator verified and attested to the others.",
            m.attested_batches,
        ),
        _counter(
            "bakong_vouched_batches_total",
            "Gossiped tx batches admitted on f+1 validators' attestations, not verified here.",
            m.vouched_batches,
        ),
        _counter(
            "bakong_unvouched_batches_total",
            "Gossiped tx batches verified here after waiting for attestations in vain.",
            m.unvouched_batches,
        ),
        _counter(
            "bakong_ignored_attestations_total",
            "Attestations from peers that are no validators (ignored).",
            m.ignored_attestations,
        ),
        _counter(
            "bakong_received_txs_total", "Transactions accepted from clients.", m.received_txs
        ),
        _labelled(
            "bakong_rejected_txs_total", "Transactions rejected, by reason code.", "code", merged
        ),
        _labelled(
            "bakong_dropped_proposals_total",
            "Peers' proposals dropped before their block was judged, by reason.",
            "reason",
            m.dropped_proposals,
        ),
        _labelled(
            "bakong_fetched_proposals_total",
            "Compact proposals this node asked the full block for, by reason.",
            "reason",
            m.fetched_proposals,
        ),
        _counter(
            "bakong_awaited_proposals_total",
            "Compact proposals whose judging waited for the held gossip txs they name.",
            m.awaited_proposals,
        ),
    ]
    for name, (help_text, label, values) in sorted(snap.labelled.items()):
        out.append(_labelled(name, help_text, label, values))
    out.append(
        _labelled(
            "bakong_p2p_events_total", "Peer-to-peer events, by kind.", "kind", snap.p2p_counters
        )
    )
    out.append(
        _histogram(
            "bakong_block_interval_seconds",
            "Time between consecutive committed blocks.",
            m.block_interval,
        )
    )
    out.append(
        _histogram(
            "bakong_commit_latency_seconds",
            "Time from a tx's admission to its commit on this node.",
            m.commit_latency,
        )
    )
    out.append(
        _histogram(
            "bakong_awaited_proposal_wait_seconds",
            "How long a compact proposal naming held txs waited for their batches.",
            m.awaited_wait,
        )
    )
    info = GaugeMetricFamily("bakong_node_info", "Node identity.", labels=["node"])
    info.add_metric([snap.node], 1)
    out.append(info)
    return out


class NodeCollector(Collector):
    """Reads a fresh snapshot from the node at every scrape."""

    def __init__(self, source: Callable[[], Snapshot]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from collect(self._source())


def make_registry(source: Callable[[], Snapshot]) -> CollectorRegistry:
    """One registry per node (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(source))
    return registry


def render(registry: CollectorRegistry) -> str:
    """The whole /metrics page, Prometheus text format."""
    return generate_latest(registry).decode()
