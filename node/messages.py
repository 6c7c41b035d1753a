"""Application message types carried over P2P, and their payload shapes.

Payloads are msgpack trees whose leaves are canonical encodings of ledger and consensus
containers (bytes), so each container is decoded by its own strict decoder.
"""

from __future__ import annotations

from typing import Any, Final

from ledger.block import MAX_COMMIT_SIGNATURES
from ledger.codec import expect_bytes, expect_bytes_max, expect_int, expect_list, expect_list_max
from ledger.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE

TX_BATCH: Final = 16  # [raw tx, ...]
PROPOSAL: Final = 17  # [proposal, block, last commit or b""]
VOTE: Final = 18  # vote
STATUS: Final = 19  # [height, block hash]
GET_BLOCKS: Final = 20  # [from height, limit]
BLOCKS: Final = 21  # [[block, commit], ...]
COMPACT_PROPOSAL: Final = 22  # [proposal, header, [tx hash, ...], last commit or b""]
GET_PROPOSAL: Final = 23  # block hash: "send me the full proposal, I miss some of its txs"
# [batch digest, bitmap]: "I believe the signatures of these txs of that batch" (node/attest.py)
ATTEST: Final = 24
TX_RESEND: Final = 25  # [raw tx, ...]: pending txs sent to one peer as it connects

MAX_TX_BATCH = 10_000
MAX_SYNC_BLOCKS = 50

# Byte bounds for fitting blocks into one frame, whose body is `pack([type, payload])`.
# msgpack headers are counted at their largest (array32, bin32, uint16 type).
ENVELOPE_BYTES: Final = 16  # [type, payload] and the BLOCKS list's own header
ITEM_OVERHEAD_BYTES: Final = 11  # one [block, commit] pair: array header, two bin32 headers
TX_OVERHEAD_BYTES: Final = 5  # one tx inside a block: its bin header
# An encoded block header is about 300 bytes at most (10 fields, chain id <= 64 bytes).
MAX_HEADER_BYTES: Final = 512
# A commit that decodes: [version, height, round, hash, [[key, sig], ...]]; each
# signature pair adds 5 header bytes to its key and signature.
MAX_COMMIT_BYTES: Final = 64 + MAX_COMMIT_SIGNATURES * (PUBLIC_KEY_SIZE + SIGNATURE_SIZE + 5)
# Room beside one block and one commit in a frame: the envelope of BLOCKS, or a PROPOSAL's
# proposal (about 160 bytes) and field headers.
FRAME_SLACK_BYTES: Final = 1024


def compute_block_bytes_bound(max_block_bytes: int, max_block_txs: int) -> int:
    """Largest encoded block whose txs take at most `max_block_bytes` in all: a block is
    [header, [tx, ...]], two array headers around the header and each tx's bin header."""
    return 1 + MAX_HEADER_BYTES + 5 + max_block_txs * TX_OVERHEAD_BYTES + max_block_bytes


def compute_block_frame_bytes(max_block_bytes: int, max_block_txs: int) -> int:
    """Frame body needed to carry one such block with its commit (BLOCKS or PROPOSAL)."""
    block = compute_block_bytes_bound(max_block_bytes, max_block_txs)
    return FRAME_SLACK_BYTES + block + MAX_COMMIT_BYTES


def parse_tx_batch(payload: Any) -> list[bytes]:
    items = expect_list_max(payload, MAX_TX_BATCH, "tx batch")
    return [expect_bytes(item, None, "tx") for item in items]


def parse_attest(payload: Any) -> tuple[bytes, bytes]:
    fields = expect_list(payload, 2, "attestation")
    digest = expect_bytes(fields[0], 32, "batch digest")
    return digest, expect_bytes_max(fields[1], (MAX_TX_BATCH + 7) // 8, "attested txs")


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


def parse_blocks(payload: Any, limit: int = MAX_SYNC_BLOCKS) -> list[tuple[bytes, bytes]]:
    """A BLOCKS reply; `limit` is the count the request asked for, so more is malformed."""
    items = expect_list_max(payload, min(limit, MAX_SYNC_BLOCKS), "blocks")
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
