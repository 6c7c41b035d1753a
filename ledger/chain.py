"""The chain on disk: the only writer of chain keys (`c/...`), and their read API.

Each block lands in ONE synced atomic batch (block, commit, state changes, state hash,
tx, account-history and payment-reference indexes, height pointer), so a crash leaves
the store at height h or h+1, never between.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from ledger.block import (
    Block,
    BlockHeader,
    Commit,
    decode_block_header,
    decode_block_tx,
    decode_block_tx_hashes,
)
from ledger.errors import (
    BlockError,
    CodecError,
    GenesisMismatch,
    StoreError,
    StoreFormatError,
    StoreVersionError,
)
from ledger.kv import KeyValueReader, KeyValueStore, WriteBatch
from ledger.references import get_lookup_keys
from ledger.schema import (
    BLOCK_HASH_PREFIX,
    SCHEMA_VERSION,
    STATE_PREFIX,
    TX_INDEX_PREFIX,
    decode_height,
    encode_height,
    make_block_hash_key,
    make_block_key,
    make_commit_key,
    make_genesis_hash_key,
    make_height_key,
    make_history_key,
    make_history_prefix,
    make_reference_index_key,
    make_reference_index_prefix,
    make_schema_version_key,
    make_state_hash_key,
    make_tx_index_key,
)
from ledger.transition import BlockResult
from ledger.tx import SignedTx

_LOCATION = struct.Struct(">QI")
_PAYMENT_LOCATION = struct.Struct(">QIH")
_STATE_KEY_START = STATE_PREFIX + b"/"

TxLocation = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PaymentLocation:
    """Where a command carrying a payment reference sits: tx, block, index in the tx."""

    tx_hash: bytes
    height: int
    position: int
    command: int


def init_chain(
    store: KeyValueStore, genesis_hash: bytes, changes: Mapping[bytes, bytes], state_hash: bytes
) -> None:
    """Write the genesis state as height 0; a no-op on a store of the same genesis."""
    existing = store.get(make_genesis_hash_key())
    # A store belongs to exactly one chain.
    if existing is not None and existing != genesis_hash:
        raise GenesisMismatch(
            f"the store holds genesis {existing.hex()}, not {genesis_hash.hex()}: it belongs "
            "to another chain (use a fresh data directory, or the genesis it was made with)"
        )
    if existing is not None:
        check_schema_version(store)
        check_block_format(store)
        return
    # Genesis may only seed state keys.
    _check_state_keys(changes)
    with store.atomic_batch() as batch:
        for key, value in changes.items():
            batch.put(key, value)
        batch.put(make_state_hash_key(0), state_hash)
        batch.put(make_height_key(), encode_height(0))
        batch.put(make_genesis_hash_key(), genesis_hash)
        batch.put(make_schema_version_key(), encode_height(SCHEMA_VERSION))


def commit_block(
    store: KeyValueStore,
    block: Block,
    commit: Commit | None,
    result: BlockResult,
    parent_commit: Commit | None = None,
) -> None:
    """Persist a decided block with its certificate and execution result, atomically.
    `parent_commit` (the certificate of the parent this block carries, when it differs
    from the one stored) replaces the stored one in the same write: one fsync, not two."""
    height = block.height
    # Blocks extend the tip one at a time.
    if height != get_height(store) + 1:
        raise BlockError(f"block {height} does not follow height {get_height(store)}", "bad_height")
    # The block builds on the block we hold at the tip.
    if block.header.prev_hash != get_block_hash(store, height - 1):
        raise BlockError(f"block {height}: prev_hash is not the tip's hash", "bad_prev_hash")
    # Our execution reached the state the header claims.
    if result.state_hash != block.header.state_hash:
        raise BlockError(f"block {height}: state hash differs from execution", "bad_state_hash")
    _check_commit(block, commit)
    _check_results(block, result)
    _check_state_keys(result.changes)
    if parent_commit is not None:
        _check_parent_commit(store, height - 1, parent_commit)
    with store.atomic_batch() as batch:
        _write_block(batch, block, commit, result)
        if parent_commit is not None:
            batch.put(make_commit_key(height - 1), parent_commit.encode())


def save_commit(store: KeyValueStore, height: int, commit: Commit) -> None:
    """Store (or replace) the certificate of a block already committed, e.g. a better one."""
    _check_parent_commit(store, height, commit)
    with store.atomic_batch() as batch:
        batch.put(make_commit_key(height), commit.encode())


def _check_parent_commit(store: KeyValueReader, height: int, commit: Commit) -> None:
    block_hash = get_block_hash(store, height)
    # Only a certificate for the block we hold at that height.
    if height < 1 or block_hash is None or commit.block_hash != block_hash:
        raise BlockError(f"commit does not certify our block at height {height}", "bad_commit")
    # The certificate's height must be the block's.
    if commit.height != height:
        raise BlockError(f"commit for height {commit.height} stored at {height}", "bad_commit")


def _check_commit(block: Block, commit: Commit | None) -> None:
    # A certificate, when given, decides exactly this block.
    if commit is not None and (commit.height, commit.block_hash) != (block.height, block.hash):
        raise BlockError(f"commit does not certify block {block.height}", "bad_commit")


def _check_results(block: Block, result: BlockResult) -> None:
    # Every tx in a block was applied; results follow block order.
    if len(result.results) != len(block.txs) or any(
        r.code is not None or r.tx_hash != tx.hash
        for r, tx in zip(result.results, block.txs, strict=True)
    ):
        raise BlockError(f"block {block.height}: results do not match its txs", "bad_results")


def _check_state_keys(changes: Mapping[bytes, object]) -> None:
    # Only state keys are written from outside this module.
    bad = next((key for key in changes if not key.startswith(_STATE_KEY_START)), None)
    if bad is not None:
        raise BlockError(f"state change to a non-state key {bad!r}", "bad_change_key")


def _write_block(
    batch: WriteBatch, block: Block, commit: Commit | None, result: BlockResult
) -> None:
    height = block.height
    batch.put(make_block_key(height), block.encode())
    batch.put(make_block_hash_key(block.hash), encode_height(height))
    if commit is not None:
        batch.put(make_commit_key(height), commit.encode())
    for key, value in result.changes.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(make_state_hash_key(height), result.state_hash)
    for position, tx_result in enumerate(result.results):
        batch.put(make_tx_index_key(tx_result.tx_hash), _LOCATION.pack(height, position))
        for account in tx_result.accounts:
            batch.put(make_history_key(account, height, position), tx_result.tx_hash)
    _write_references(batch, block)
    batch.put(make_height_key(), encode_height(height))


def _write_references(batch: WriteBatch, block: Block) -> None:
    """Index every payment under its lookup keys (its code's md5, its free reference)."""
    for position, tx in enumerate(block.txs):
        for index, cmd in enumerate(tx.body.commands):
            for lookup_key in get_lookup_keys(cmd):
                key = make_reference_index_key(lookup_key, block.height, position, index)
                batch.put(key, tx.hash)


def check_schema_version(store: KeyValueReader) -> None:
    """Refuse a store written with another layout of keys and records."""
    raw = store.get(make_schema_version_key())
    version = decode_height(raw) if raw is not None and len(raw) == 8 else None
    if version != SCHEMA_VERSION:
        found = "no schema version" if version is None else f"schema version {version}"
        raise StoreVersionError(
            f"the store has {found}, this version of bakong-sim reads version "
            f"{SCHEMA_VERSION}: start from a fresh data directory (for a local testnet, "
            "`bakong testnet init --force`)"
        )


def check_block_format(store: KeyValueReader) -> None:
    """Refuse a store whose tip block this version cannot read (an older block format),
    before anything misreads it."""
    height = get_height(store)
    raw = store.get(make_block_key(height)) if height > 0 else None
    if raw is None:
        return
    try:
        decode_block_header(raw)
    except CodecError as exc:
        raise StoreFormatError(
            f"block {height} in the store is not in this version's format ({exc.message}); "
            "it was written by another version of bakong-sim: start from a fresh data "
            "directory (for a local testnet, `bakong testnet init --force`)"
        ) from exc


def is_initialized(store: KeyValueReader) -> bool:
    return store.get(make_height_key()) is not None


def get_height(store: KeyValueReader) -> int:
    raw = store.get(make_height_key())
    if raw is None:
        raise StoreError("the store holds no chain: load a genesis first", "no_genesis")
    return decode_height(raw)


def get_genesis_hash(store: KeyValueReader) -> bytes | None:
    return store.get(make_genesis_hash_key())


def get_block(store: KeyValueReader, height: int) -> Block | None:
    raw = store.get(make_block_key(height))
    return None if raw is None else Block.decode(raw)


def get_block_tx_hashes(store: KeyValueReader, height: int) -> list[bytes] | None:
    """The tx ids of the block at `height`, in order, without decoding its txs."""
    raw = store.get(make_block_key(height))
    return None if raw is None else decode_block_tx_hashes(raw)


def get_block_header(store: KeyValueReader, height: int) -> BlockHeader | None:
    raw = store.get(make_block_key(height))
    return None if raw is None else decode_block_header(raw)


def get_block_hash(store: KeyValueReader, height: int) -> bytes | None:
    """The hash a block at `height + 1` names as prev_hash: the genesis hash at height 0."""
    if height == 0:
        return get_genesis_hash(store)
    header = get_block_header(store, height)
    return None if header is None else header.hash


def get_block_height(store: KeyValueReader, block_hash: bytes) -> int | None:
    raw = store.get(make_block_hash_key(block_hash))
    return None if raw is None else decode_height(raw)


def get_block_by_hash(store: KeyValueReader, block_hash: bytes) -> Block | None:
    height = get_block_height(store, block_hash)
    return None if height is None else get_block(store, height)


def get_commit(store: KeyValueReader, height: int) -> Commit | None:
    raw = store.get(make_commit_key(height))
    return None if raw is None else Commit.decode(raw)


def get_state_hash(store: KeyValueReader, height: int) -> bytes | None:
    return store.get(make_state_hash_key(height))


def get_tx_location(store: KeyValueReader, tx_hash: bytes) -> TxLocation | None:
    """(height, position in block) of a committed tx."""
    raw = store.get(make_tx_index_key(tx_hash))
    if raw is None:
        return None
    height, position = _LOCATION.unpack(raw)
    return height, position


def get_tx(store: KeyValueReader, tx_hash: bytes) -> tuple[SignedTx, int, int] | None:
    """A committed tx with its (height, position); decodes only that tx of its block."""
    location = get_tx_location(store, tx_hash)
    raw = None if location is None else store.get(make_block_key(location[0]))
    if location is None or raw is None:
        return None
    tx = decode_block_tx(raw, location[1])
    return None if tx is None else (tx, location[0], location[1])


def find_by_hex_prefix(
    store: KeyValueReader, key_prefix: bytes, hex_prefix: str, limit: int
) -> list[bytes]:
    """The 32-byte hashes under `key_prefix` whose hex starts with `hex_prefix` (any
    length, lowercase), in hash order, at most `limit`."""
    whole = hex_prefix[: len(hex_prefix) // 2 * 2]
    found: list[bytes] = []
    for key, _ in store.iterate(key_prefix + bytes.fromhex(whole)):
        digest = key[len(key_prefix) :]
        if not digest.hex().startswith(hex_prefix):
            continue
        if len(found) >= limit:
            break
        found.append(digest)
    return found


def find_tx_hashes(store: KeyValueReader, hex_prefix: str, limit: int) -> list[bytes]:
    """Committed tx hashes whose hex starts with `hex_prefix`, at most `limit`."""
    return find_by_hex_prefix(store, TX_INDEX_PREFIX, hex_prefix, limit)


def find_block_hashes(store: KeyValueReader, hex_prefix: str, limit: int) -> list[bytes]:
    """Block hashes whose hex starts with `hex_prefix`, at most `limit`."""
    return find_by_hex_prefix(store, BLOCK_HASH_PREFIX, hex_prefix, limit)


def get_account_history(
    store: KeyValueReader, account: str, limit: int, before: TxLocation | None = None
) -> list[tuple[int, int, bytes]]:
    """(height, position, tx hash) of txs touching `account`, newest first.

    Pass the last item's (height, position) as `before` to get the next page.
    """
    prefix = make_history_prefix(account)
    start = None if before is None else make_history_key(account, *before)
    page: list[tuple[int, int, bytes]] = []
    for key, tx_hash in store.iterate(prefix, start=start, reverse=True):
        if len(page) >= limit:
            break
        if key != start:
            height, position = _LOCATION.unpack(key[len(prefix) :])
            page.append((height, position, tx_hash))
    return page


def get_payments(store: KeyValueReader, lookup_key: str, limit: int) -> list[PaymentLocation]:
    """Payments filed under `lookup_key` (a KHQR code's md5 or a free-form reference, see
    `ledger.references.get_lookup_keys`), oldest first, at most `limit`."""
    prefix = make_reference_index_prefix(lookup_key)
    found: list[PaymentLocation] = []
    for key, tx_hash in store.iterate(prefix):
        if len(found) >= limit:
            break
        height, position, command = _PAYMENT_LOCATION.unpack(key[len(prefix) :])
        found.append(PaymentLocation(tx_hash, height, position, command))
    return found
