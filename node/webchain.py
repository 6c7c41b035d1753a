"""What the web explorer reads from a node, each read bounded: block summaries and the
window of recent blocks behind the charts, a page of a block's txs, the latest txs, the
network's status, and what a hash, a prefix or a height names.

A summary needs a block's header and its tx count only: the block is unpacked, its txs
are not decoded (a block of thousands of txs costs a fraction of a millisecond).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from ledger import chain
from ledger.block import BlockHeader
from ledger.codec import expect_bytes_max, expect_list, unpack
from ledger.constants import MAX_BLOCK_BYTES, MAX_TX_BYTES
from ledger.schema import BANK_PREFIX, make_block_key
from ledger.state import Bank
from ledger.tx import SignedTx
from node.runtime import Node

# The recent blocks the explorer keeps summaries of (charts, latest blocks).
WINDOW_MS: Final = 10 * 60 * 1000
MAX_WINDOW: Final = 2000
# A first fill (or a refill after a jump) reads at most this many blocks back.
MAX_FILL: Final = 600
# Blocks the latest-txs list walks back through at most.
MAX_TX_SCAN_BLOCKS: Final = 50
MAX_BANKS: Final = 1000
MAX_MATCHES: Final = 10
MIN_PREFIX: Final = 8
HEX_RE: Final = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True, slots=True)
class BlockSummary:
    height: int
    hash: str
    time_ms: int
    proposer: str
    txs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "hash": self.hash,
            "time": self.time_ms,
            "proposer": self.proposer,
            "txs": self.txs,
        }


def _unpack_block(raw: bytes) -> tuple[BlockHeader, list[Any]]:
    fields = expect_list(unpack(raw, MAX_BLOCK_BYTES), 2, "block")
    return BlockHeader.from_obj(fields[0]), expect_list(fields[1], None, "block txs")


def read_summary(node: Node, height: int) -> BlockSummary | None:
    raw = node.store.get(make_block_key(height)) if height >= 1 else None
    if raw is None:
        return None
    header, txs = _unpack_block(raw)
    return BlockSummary(height, header.hash.hex(), header.time_ms, header.proposer, len(txs))


def read_block_txs(node: Node, height: int, start: int, count: int) -> tuple[int, list[SignedTx]]:
    """(the block's tx count, its txs from position `start`, at most `count`), decoding
    only those."""
    raw = node.store.get(make_block_key(height))
    if raw is None:
        return 0, []
    _, raw_txs = _unpack_block(raw)
    page = raw_txs[start : start + count]
    return len(raw_txs), [SignedTx.decode(expect_bytes_max(r, MAX_TX_BYTES, "tx")) for r in page]


def read_last_txs(node: Node, height: int, count: int) -> list[tuple[SignedTx, int]]:
    """(tx, position) of the last `count` txs of the block at `height`, newest first."""
    raw = node.store.get(make_block_key(height))
    if raw is None or count <= 0:
        return []
    _, raw_txs = _unpack_block(raw)
    first = max(0, len(raw_txs) - count)
    txs = [SignedTx.decode(expect_bytes_max(r, MAX_TX_BYTES, "tx")) for r in raw_txs[first:]]
    return [(tx, first + i) for i, tx in enumerate(txs)][::-1]


class ChainWindow:
    """Summaries of the recent blocks, oldest first: read from the store when a page or
    the live feed asks (`advance`), at most `MAX_WINDOW` kept."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._blocks: deque[BlockSummary] = deque(maxlen=MAX_WINDOW)

    def advance(self, tip: int) -> None:
        """Read the blocks up to `tip` not yet summarised; after a jump of more than
        `MAX_FILL` blocks (or at first) only the last `MAX_FILL`, newest first, stopping
        at blocks older than `WINDOW_MS` before the tip."""
        last = self._blocks[-1].height if self._blocks else 0
        if tip <= last:
            return
        if tip - last <= MAX_FILL and self._blocks:
            for height in range(last + 1, tip + 1):
                self._append(read_summary(self._node, height))
            return
        self._blocks.clear()
        newest_first: list[BlockSummary] = []
        for height in range(tip, max(0, tip - MAX_FILL), -1):
            summary = read_summary(self._node, height)
            if summary is None:
                break
            newest_first.append(summary)
            if summary.time_ms < newest_first[0].time_ms - WINDOW_MS:
                break
        self._blocks.extend(reversed(newest_first))

    def _append(self, summary: BlockSummary | None) -> None:
        if summary is not None:
            self._blocks.append(summary)

    def newest(self, count: int) -> list[BlockSummary]:
        """The last `count` blocks, newest first."""
        return [self._blocks[-1 - i] for i in range(min(count, len(self._blocks)))]

    def after(self, height: int) -> list[BlockSummary]:
        """The kept blocks above `height`, oldest first."""
        return [b for b in self._blocks if b.height > height]

    def since(self, time_ms: int) -> list[BlockSummary]:
        """The kept blocks made at or after `time_ms`, oldest first (at least the
        newest, for the interval chart)."""
        found = [b for b in self._blocks if b.time_ms >= time_ms]
        return found or self.newest(1)


def tx_rate(blocks: list[BlockSummary], now_ms: int, span_ms: int) -> float:
    """Committed txs per second over the `span_ms` before `now_ms`."""
    start = now_ms - span_ms
    return sum(b.txs for b in blocks if start < b.time_ms <= now_ms) / (span_ms / 1000)


def latest_txs(node: Node, tip: int, limit: int) -> list[tuple[SignedTx, int, int]]:
    """(tx, height, position) of the last `limit` committed txs, newest first, looking
    through at most `MAX_TX_SCAN_BLOCKS` blocks."""
    found: list[tuple[SignedTx, int, int]] = []
    for height in range(tip, max(0, tip - MAX_TX_SCAN_BLOCKS), -1):
        found += [(tx, height, at) for tx, at in read_last_txs(node, height, limit - len(found))]
        if len(found) >= limit:
            break
    return found


def bank_of_node_key(node: Node) -> dict[bytes, str]:
    """Node key -> the bank it belongs to (bounded by `MAX_BANKS`)."""
    out: dict[bytes, str] = {}
    for _, raw in node.store.iterate(BANK_PREFIX):
        bank = Bank.decode(raw)
        out[bank.node_key] = bank.code
        if len(out) >= MAX_BANKS:
            break
    return out


def commit_signers(node: Node, height: int) -> list[tuple[str, bytes, bytes | None]]:
    """(validator, public key, its signature in the commit of `height`, or None) for
    each validator of that height; none at the genesis."""
    if height < 1:
        return []
    commit = chain.get_commit(node.store, height)
    signed = {s.validator: s.signature for s in commit.signatures} if commit else {}
    validators = node.engine.get_validators(height).validators
    return [(v.name, v.public_key, signed.get(v.public_key)) for v in validators]


def network_status(node: Node) -> dict[str, Any]:
    """What the home page shows of the network and live feed sends when it changes."""
    tip = node.engine.height
    header = chain.get_block_header(node.store, tip) if tip >= 1 else None
    names = bank_of_node_key(node)
    peers = sorted(names.get(key, key.hex()[:16]) for key in node.p2p.connected_peers())
    next_set = node.engine.get_validators(tip + 1).validators
    signed = {name for name, _, sig in commit_signers(node, tip) if sig is not None}
    return {
        "chain_id": node.chain_id,
        "node": node.config.name,
        "height": tip,
        "round": node.engine.round,
        "mempool": len(node.mempool),
        "peers": peers,
        "last_block_time": header.time_ms if header else None,
        "validators": [{"name": v.name, "signed": v.name in signed} for v in next_set],
    }


def find_tx_hashes(node: Node, prefix: str) -> list[bytes]:
    """Txs this node knows (committed, pending or rejected) whose hash starts with
    `prefix` (lowercase hex, 8-64 digits), at most `MAX_MATCHES` + 1."""
    limit = MAX_MATCHES + 1
    if len(prefix) == 64:
        tx_hash = bytes.fromhex(prefix)
        return [tx_hash] if node.tx_status(tx_hash) is not None else []
    found = set(chain.find_tx_hashes(node.store, prefix, limit))
    found.update(node.mempool.find_hashes(prefix, limit))
    found.update(node.mempool.find_rejected(prefix, limit))
    return sorted(found)[:limit]


def find_block_heights(node: Node, prefix: str) -> list[int]:
    """Heights of the blocks whose hash starts with `prefix`, at most `MAX_MATCHES` + 1."""
    heights = []
    for block_hash in chain.find_block_hashes(node.store, prefix, MAX_MATCHES + 1):
        height = chain.get_block_height(node.store, block_hash)
        if height is not None:
            heights.append(height)
    return heights
