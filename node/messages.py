"""Application message types carried over P2P, and their payload shapes.

Payloads are msgpack trees whose leaves are canonical encodings of ledger and consensus
containers (bytes), so each container is decoded by its own strict decoder.
"""

from __future__ import annotations

from typing import Any, Final

from ledger.codec import expect_bytes, expect_int, expect_list, expect_list_max

TX_BATCH: Final = 16  # [raw tx, ...]
PROPOSAL: Final = 17  # [proposal, block, last commit or b""]
VOTE: Final = 18  # vote
STATUS: Final = 19  # [height, block hash]
GET_BLOCKS: Final = 20  # [from height, limit]
BLOCKS: Final = 21  # [[block, commit], ...]
COMPACT_PROPOSAL: Final = 22  # [proposal, header, [tx hash, ...], last commit or b""]
GET_PROPOSAL: Final = 23  # block hash: "send me the full proposal, I miss some of its txs"

MAX_TX_BATCH = 10_000
MAX_SYNC_BLOCKS = 50


def parse_tx_batch(payload: Any) -> list[bytes]:
    items = expect_list_max(payload, MAX_TX_BATCH, "tx batch")
    return [expect_bytes(item, None, "tx") for item in items]


def parse_proposal(payload: Any) -> tuple[bytes, bytes, bytes]:
    fields = expect_list(payload, 3, "proposal message")
    return (
        expect_bytes(fields[0], None, "proposal"),
        expect_bytes(fields[1], None, "block"),
        expect_bytes(fields[2], None, "last commit"),
    )


def parse_status(payload: Any) -> tuple[int, bytes]:
    fields = expect_list(payload, 2, "status")
    return expect_int(fields[0], 0, 2**63 - 1, "height"), expect_bytes(fields[1], None, "hash")


def parse_get_blocks(payload: Any) -> tuple[int, int]:
    fields = expect_list(payload, 2, "get blocks")
    start = expect_int(fields[0], 1, 2**63 - 1, "from")
    return start, expect_int(fields[1], 1, MAX_SYNC_BLOCKS, "limit")


def parse_blocks(payload: Any) -> list[tuple[bytes, bytes]]:
    items = expect_list_max(payload, MAX_SYNC_BLOCKS, "blocks")
    out = []
    for item in items:
        pair = expect_list(item, 2, "block and commit")
        out.append((expect_bytes(pair[0], None, "block"), expect_bytes(pair[1], None, "commit")))
    return out


def parse_compact_proposal(payload: Any) -> tuple[bytes, bytes, list[bytes], bytes]:
    fields = expect_list(payload, 4, "compact proposal")
    hashes = expect_list_max(fields[2], 1_000_000, "tx hashes")
    return (
        expect_bytes(fields[0], None, "proposal"),
        expect_bytes(fields[1], None, "header"),
        [expect_bytes(h, 32, "tx hash") for h in hashes],
        expect_bytes(fields[3], None, "last commit"),
    )


def parse_get_proposal(payload: Any) -> bytes:
    return expect_bytes(payload, 32, "block hash")
