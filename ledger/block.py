"""Blocks, their headers and commit certificates, with one canonical encoding each.

A header commits to its transactions through a binary Merkle root over the txs' wire
hashes (each whole signed tx, signatures included: one header names one exact list of
signed txs) and to the state after the block through the incremental state hash. A
`Commit` is the 2f+1 precommit signatures that decided a block; it is stored with the
block it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.codec import (
    expect_bytes,
    expect_bytes_max,
    expect_int,
    expect_list,
    expect_list_max,
    expect_str,
    expect_version,
    fail,
    pack,
    unpack,
)
from ledger.constants import (
    BLOCK_VERSION,
    HASH_SIZE,
    MAX_BLOCK_BYTES,
    MAX_TX_BYTES,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
)
from ledger.crypto import sha256
from ledger.ids import is_bank_code
from ledger.tx import SignedTx

# Version 1 of the commit format; blocks are at version 2 since the tx root covers
# signatures, commits did not change.
COMMIT_VERSION = 1
MAX_COMMIT_SIGNATURES = 1024
MAX_ROUND = 2**32 - 1
MAX_HEIGHT = 2**63 - 1
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
    def decode(data: bytes) -> Block:
        fields = expect_list(unpack(data, MAX_BLOCK_BYTES), 2, "block")
        header = BlockHeader.from_obj(fields[0])
        raw_txs = tuple(
            expect_bytes_max(raw, MAX_TX_BYTES, "tx")
            for raw in expect_list(fields[1], None, "block txs")
        )
        txs = tuple(SignedTx.decode(raw) for raw in raw_txs)
        # The signed txs must be the ones the header commits to.
        if compute_tx_root([tx.wire_hash for tx in txs]) != header.tx_root:
            fail("block tx root does not match its txs", "bad_tx_root")
        return _assemble_block(header, txs, raw_txs)


def _assemble_block(
    header: BlockHeader, txs: tuple[SignedTx, ...], tx_bytes: tuple[bytes, ...]
) -> Block:
    """A Block from decoded parts whose canonical tx bytes are already known."""
    block = object.__new__(Block)
    object.__setattr__(block, "header", header)
    object.__setattr__(block, "txs", txs)
    object.__setattr__(block, "tx_bytes", tx_bytes)
    return block


def decode_block_header(data: bytes) -> BlockHeader:
    """The header of an encoded block, without decoding its txs (listings, tip hash)."""
    fields = expect_list(unpack(data, MAX_BLOCK_BYTES), 2, "block")
    return BlockHeader.from_obj(fields[0])


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


@dataclass(frozen=True, slots=True)
class CommitSig:
    """One validator's precommit signature: `validator` is its 32-byte node public key."""

    validator: bytes
    signature: bytes

    def to_obj(self) -> list[Any]:
        return [self.validator, self.signature]

    @staticmethod
    def from_obj(obj: Any) -> CommitSig:
        fields = expect_list(obj, 2, "commit signature")
        return CommitSig(
            validator=expect_bytes(fields[0], PUBLIC_KEY_SIZE, "commit validator"),
            signature=expect_bytes(fields[1], SIGNATURE_SIZE, "commit signature"),
        )


@dataclass(frozen=True, slots=True)
class Commit:
    """The certificate that decided `block_hash` at (height, round): 2f+1 precommits.

    Which signatures count (known validators, no duplicates, quorum) is consensus's check;
    this container only guarantees shape and a canonical encoding.
    """

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSig, ...]

    def to_obj(self) -> list[Any]:
        sigs = [sig.to_obj() for sig in self.signatures]
        return [COMMIT_VERSION, self.height, self.round, self.block_hash, sigs]

    def encode(self) -> bytes:
        return pack(self.to_obj())

    @property
    def hash(self) -> bytes:
        return sha256(self.encode())

    @staticmethod
    def from_obj(obj: Any) -> Commit:
        fields = expect_list(obj, 5, "commit")
        expect_version(fields[0], COMMIT_VERSION, "commit")
        sigs = expect_list_max(fields[4], MAX_COMMIT_SIGNATURES, "commit signatures")
        return Commit(
            height=expect_int(fields[1], 0, MAX_HEIGHT, "commit height"),
            round=expect_int(fields[2], 0, MAX_ROUND, "commit round"),
            block_hash=expect_bytes(fields[3], HASH_SIZE, "commit block hash"),
            signatures=tuple(CommitSig.from_obj(sig) for sig in sigs),
        )

    @staticmethod
    def decode(data: bytes) -> Commit:
        return Commit.from_obj(unpack(data))


def compute_validator_set_hash(validators: Sequence[tuple[str, bytes]]) -> bytes:
    """Hash of the ordered (bank code, node public key) list; order matters (rotation)."""
    return sha256(pack([COMMIT_VERSION, [[bank, key] for bank, key in validators]]))
