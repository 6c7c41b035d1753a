"""Blocks, their headers and commit certificates, with one canonical encoding each.

A header commits to its transactions through a binary Merkle root over the txs' wire
hashes (each whole signed tx, signatures included: one header names one exact list of
signed txs) and to the state after the block through the incremental state hash. A
`Commit` is the 2f+1 precommit signatures that decided a block; it is stored with the
block it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.codec import (
    expect_bytes,
    expect_bytes_max,
    expect_int,
    expect_list,
    expect_str,
    expect_version,
    fail,
    pack,
    unpack,
)
from ledger.commit import (  # re-exported: the consensus-facing types live there
    COMMIT_VERSION,
    MAX_COMMIT_SIGNATURES,
    MAX_HEIGHT,
    MAX_ROUND,
    Commit,
    CommitSig,
    compute_validator_set_hash,
)
from ledger.constants import (
    BLOCK_VERSION,
    HASH_SIZE,
    MAX_BLOCK_BYTES,
    MAX_TX_BYTES,
)
from ledger.crypto import sha256
from ledger.ids import is_bank_code
from ledger.tx import SignedTx, peek_tx_hash

__all__ = [
    "COMMIT_VERSION",
    "EMPTY_ROOT",
    "MAX_COMMIT_SIGNATURES",
    "MAX_HEIGHT",
    "MAX_ROUND",
    "NO_COMMIT_HASH",
    "Block",
    "BlockHeader",
    "Commit",
    "CommitSig",
    "build_block",
    "compute_tx_root",
    "compute_validator_set_hash",
    "decode_block_header",
    "decode_block_tx",
]

MAX_TIME_MS = 2**63 - 1
MAX_CHAIN_ID_BYTES = 64
EMPTY_ROOT = sha256(b"")
# What `last_commit_hash` holds in block 1, which has no previous commit.
NO_COMMIT_HASH = bytes(HASH_SIZE)

_LEAF = b"\x00"
_NODE = b"\x01"


def compute_tx_root(tx_hashes: Sequence[bytes]) -> bytes:
    """Binary Merkle root over tx wire hashes (RFC 6962 leaf/node prefixes, odd node
    promoted); callers pass `tx.wire_hash`, never the body hash.

    The prefixes keep a leaf from ever passing for an inner node, and promoting (not
    duplicating) the odd node keeps two different lists from sharing a root.
    """
    if not tx_hashes:
        return EMPTY_ROOT
    level = [sha256(_LEAF + tx_hash) for tx_hash in tx_hashes]
    while len(level) > 1:
        paired = [sha256(_NODE + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What validators sign (through the block hash): `hash` is sha256 of the encoding."""

    version: int
    chain_id: str
    height: int
    time_ms: int
    prev_hash: bytes
    tx_root: bytes
    state_hash: bytes
    proposer: str
    validator_set_hash: bytes
    last_commit_hash: bytes
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", sha256(self.encode()))

    def to_obj(self) -> list[Any]:
        return [
            self.version,
            self.chain_id,
            self.height,
            self.time_ms,
            self.prev_hash,
            self.tx_root,
            self.state_hash,
            self.proposer,
            self.validator_set_hash,
            self.last_commit_hash,
        ]

    def encode(self) -> bytes:
        return pack(self.to_obj())

    @staticmethod
    def from_obj(obj: Any) -> BlockHeader:
        f = expect_list(obj, 10, "block header")
        proposer = expect_str(f[7], 16, "block proposer")
        # The proposer is named by its bank code.
        if not is_bank_code(proposer):
            fail(f"block proposer: {proposer!r} is not a bank code", "invalid_id")
        return BlockHeader(
            version=expect_version(f[0], BLOCK_VERSION, "block header"),
            chain_id=expect_str(f[1], MAX_CHAIN_ID_BYTES, "block chain id"),
            height=expect_int(f[2], 1, MAX_HEIGHT, "block height"),
            time_ms=expect_int(f[3], 0, MAX_TIME_MS, "block time"),
            prev_hash=expect_bytes(f[4], HASH_SIZE, "block prev hash"),
            tx_root=expect_bytes(f[5], HASH_SIZE, "block tx root"),
            state_hash=expect_bytes(f[6], HASH_SIZE, "block state hash"),
            proposer=proposer,
            validator_set_hash=expect_bytes(f[8], HASH_SIZE, "block validator set hash"),
            last_commit_hash=expect_bytes(f[9], HASH_SIZE, "block last commit hash"),
        )

    @staticmethod
    def decode(data: bytes) -> BlockHeader:
        return BlockHeader.from_obj(unpack(data))


@dataclass(frozen=True, slots=True)
class Block:
    """A header and its signed txs. Encoded as [header, [tx bytes, ...]]; `tx_bytes` holds
    each tx's canonical bytes, kept from decoding so that storing a received block never
    re-encodes its txs."""

    header: BlockHeader
    txs: tuple[SignedTx, ...]
    tx_bytes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tx_bytes", tuple(tx.encode() for tx in self.txs))

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def encode(self) -> bytes:
        return pack([self.header.to_obj(), list(self.tx_bytes)])

    @staticmethod
    def decode(data: bytes, held: Callable[[bytes], SignedTx | None] | None = None) -> Block:
        """Strict decode. `held(raw)` may return an already decoded tx whose canonical
        encoding is exactly `raw` (a node's mempool copy): that tx is not decoded again.
        Decoding is deterministic, so the block is the same either way."""
        fields = expect_list(unpack(data, MAX_BLOCK_BYTES), 2, "block")
        header = BlockHeader.from_obj(fields[0])
        raw_txs = tuple(
            expect_bytes_max(raw, MAX_TX_BYTES, "tx")
            for raw in expect_list(fields[1], None, "block txs")
        )
        if held is None:
            txs = tuple(SignedTx.decode(raw) for raw in raw_txs)
        else:
            txs = tuple(_held_or_decoded(raw, held) for raw in raw_txs)
        # The signed txs must be the ones the header commits to.
        if compute_tx_root([tx.wire_hash for tx in txs]) != header.tx_root:
            fail("block tx root does not match its txs", "bad_tx_root")
        return assemble_block(header, txs, raw_txs)


def _held_or_decoded(raw: bytes, held: Callable[[bytes], SignedTx | None]) -> SignedTx:
    """`held`'s copy of `raw` if it is one (its wire hash is the hash of exactly these
    bytes, so the stored bytes and the executed tx cannot differ), else `raw` decoded."""
    tx = held(raw)
    if tx is not None and tx.wire_hash == sha256(raw):
        return tx
    return SignedTx.decode(raw)


def assemble_block(
    header: BlockHeader, txs: tuple[SignedTx, ...], tx_bytes: tuple[bytes, ...]
) -> Block:
    """A Block from decoded parts whose canonical tx bytes are already known (each
    `tx_bytes[i]` is `txs[i].encode()`, e.g. as decoded or as the mempool keeps it), so
    nothing is encoded again. The caller has checked the tx root."""
    block = object.__new__(Block)
    object.__setattr__(block, "header", header)
    object.__setattr__(block, "txs", txs)
    object.__setattr__(block, "tx_bytes", tx_bytes)
    return block


def decode_block_header(data: bytes) -> BlockHeader:
    """The header of an encoded block, without decoding its txs (listings, tip hash)."""
    fields = expect_list(unpack(data, MAX_BLOCK_BYTES), 2, "block")
    return BlockHeader.from_obj(fields[0])


def decode_block_tx_hashes(data: bytes) -> list[bytes]:
    """The tx ids of an encoded block the node stored itself (so well formed), each read
    from its tx's outer list (`peek_tx_hash`) rather than by decoding the whole tx: a
    fifth of the cost, for listings such as a follower's `?view=hashes`."""
    fields = expect_list(unpack(data, MAX_BLOCK_BYTES), 2, "block")
    hashes = []
    for raw in expect_list(fields[1], None, "block txs"):
        tx_hash = peek_tx_hash(expect_bytes_max(raw, MAX_TX_BYTES, "tx"))
        hashes.append(tx_hash if tx_hash is not None else SignedTx.decode(raw).hash)
    return hashes


def decode_block_tx(data: bytes, position: int) -> SignedTx | None:
    """The tx at `position` of an encoded block, decoding only that tx (tx lookups)."""
    fields = expect_list(unpack(data, MAX_BLOCK_BYTES), 2, "block")
    raw_txs = expect_list(fields[1], None, "block txs")
    if not 0 <= position < len(raw_txs):
        return None
    return SignedTx.decode(expect_bytes_max(raw_txs[position], MAX_TX_BYTES, "tx"))


def build_block(
    *,
    chain_id: str,
    height: int,
    time_ms: int,
    prev_hash: bytes,
    state_hash: bytes,
    proposer: str,
    validator_set_hash: bytes,
    last_commit_hash: bytes,
    txs: Sequence[SignedTx],
) -> Block:
    """A block whose header carries the tx root of `txs` (what a proposer builds)."""
    header = BlockHeader(
        version=BLOCK_VERSION,
        chain_id=chain_id,
        height=height,
        time_ms=time_ms,
        prev_hash=prev_hash,
        tx_root=compute_tx_root([tx.wire_hash for tx in txs]),
        state_hash=state_hash,
        proposer=proposer,
        validator_set_hash=validator_set_hash,
        last_commit_hash=last_commit_hash,
    )
    return Block(header, tuple(txs))
