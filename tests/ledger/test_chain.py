"""Chain commit and read API: one atomic batch per block, indexes, genesis guard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.block import NO_COMMIT_HASH, Block, Commit, CommitSig, build_block
from ledger.chain import (
    commit_block,
    get_account_history,
    get_block,
    get_block_by_hash,
    get_block_hash,
    get_block_header,
    get_commit,
    get_genesis_hash,
    get_height,
    get_state_hash,
    get_tx,
    get_tx_location,
    init_chain,
    is_initialized,
    save_commit,
)
from ledger.codec import pack
from ledger.commands import Transfer
from ledger.crypto import PrivateKey, sha256
from ledger.errors import (
    BlockError,
    GenesisMismatch,
    StoreError,
    StoreFormatError,
    StoreVersionError,
)
from ledger.kv import KeyValueStore
from ledger.schema import (
    SCHEMA_VERSION,
    encode_height,
    make_block_key,
    make_schema_version_key,
)
from ledger.store.leveldb import LevelDBStore
from ledger.store.memory import MemoryStore
from ledger.transition import BlockResult, TxResult
from ledger.tx import SignedTx, TxBody, sign_tx

KEY = PrivateKey.from_seed(bytes(range(32)))
GENESIS = sha256(b"genesis")
GENESIS_STATE = {b"s/a/alice@aba": b"alice", b"s/a/bob@aba": b"bob"}


def make_tx(nonce: int, to: str = "bob@aba") -> SignedTx:
    body = TxBody(1, "test", "alice@aba", nonce, 1_000, (Transfer("alice@aba", to, "KHR", 5),))
    return sign_tx(body, KEY)


def make_result(
    txs: list[SignedTx], changes: dict[bytes, bytes | None] | None = None, height: int = 1
) -> BlockResult:
    results = tuple(TxResult(tx.hash, None, ("alice@aba", tx.body.commands[0].to)) for tx in txs)  # type: ignore[union-attr]
    state_hash = sha256(b"state %d" % height)
    return BlockResult(state_hash, changes or {}, results)


def next_block(store: KeyValueStore, txs: list[SignedTx]) -> tuple[Block, BlockResult]:
    height = get_height(store) + 1
    result = make_result(txs, {b"s/h": b"%d" % height}, height)
    block = build_block(
        chain_id="test",
        height=height,
        time_ms=1_000 * height,
        prev_hash=get_block_hash(store, height - 1) or b"",
        state_hash=result.state_hash,
        proposer="aba",
        validator_set_hash=b"v" * 32,
        last_commit_hash=NO_COMMIT_HASH,
        txs=txs,
    )
    return block, result


def make_commit(block: Block, round_: int = 0) -> Commit:
    return Commit(block.height, round_, block.hash, (CommitSig(b"k" * 32, b"s" * 64),))


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    init_chain(store, GENESIS, GENESIS_STATE, sha256(b"state 0"))
    return store


def commit_next(store: KeyValueStore, txs: list[SignedTx]) -> Block:
    block, result = next_block(store, txs)
    commit_block(store, block, make_commit(block), result)
    return block


def snapshot(store: KeyValueStore) -> list[tuple[bytes, bytes]]:
    return list(store.iterate(b""))


def test_basic(store: MemoryStore) -> None:
    txs = [make_tx(0), make_tx(1, "carol@aba")]
    block = commit_next(store, txs)
    assert get_height(store) == 1
    assert get_block(store, 1) == block
    assert get_block_by_hash(store, block.hash) == block
    assert get_block_header(store, 1) == block.header
    assert get_block_hash(store, 1) == block.hash
    assert get_commit(store, 1) == make_commit(block)
    assert get_state_hash(store, 1) == block.header.state_hash
    assert get_tx_location(store, txs[1].hash) == (1, 1)
    assert get_tx(store, txs[1].hash) == (txs[1], 1, 1)
    assert store.get(b"s/h") == b"1"
    assert get_account_history(store, "carol@aba", 10) == [(1, 1, txs[1].hash)]


def test_init_chain_writes_height_zero(store: MemoryStore) -> None:
    assert is_initialized(store)
    assert get_height(store) == 0
    assert get_genesis_hash(store) == GENESIS
    assert get_block_hash(store, 0) == GENESIS
    assert get_state_hash(store, 0) == sha256(b"state 0")
    assert store.get(b"s/a/alice@aba") == b"alice"


def test_init_chain_same_genesis_is_noop(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0)])
    before = snapshot(store)
    init_chain(store, GENESIS, {b"s/x": b"other"}, sha256(b"other"))
    assert snapshot(store) == before


def test_invalid_genesis_mismatch(store: MemoryStore) -> None:
    with pytest.raises(GenesisMismatch) as info:
        init_chain(store, sha256(b"another"), GENESIS_STATE, sha256(b"state 0"))
    assert info.value.code == "genesis_mismatch"
    assert GENESIS.hex() in info.value.message


def test_invalid_store_of_an_older_block_format(store: MemoryStore) -> None:
    """A store written when blocks were version 1 (tx root over body hashes) is refused
    when it is opened, with the way out in the message, before anything misreads it."""
    block = commit_next(store, [make_tx(0)])
    header = block.header.to_obj()
    header[0] = 1
    store.put(make_block_key(1), pack([header, list(block.tx_bytes)]))
    before = snapshot(store)
    with pytest.raises(StoreFormatError) as info:
        init_chain(store, GENESIS, GENESIS_STATE, sha256(b"state 0"))
    assert info.value.code == "store_format"
    assert "block 1" in info.value.message and "fresh data directory" in info.value.message
    assert snapshot(store) == before


@pytest.mark.parametrize("version", [None, SCHEMA_VERSION - 1, SCHEMA_VERSION + 1])
def test_invalid_store_of_another_schema_version(store: MemoryStore, version: int | None) -> None:
    """A store without this version's schema key (an older one) or with another is
    refused when it is opened, the way a foreign genesis is."""
    if version is None:
        store.delete(make_schema_version_key())
    else:
        store.put(make_schema_version_key(), encode_height(version))
    with pytest.raises(StoreVersionError) as info:
        init_chain(store, GENESIS, GENESIS_STATE, sha256(b"state 0"))
    assert info.value.code == "store_version"
    assert f"version {SCHEMA_VERSION}" in info.value.message
    assert "fresh data directory" in info.value.message


def test_init_chain_writes_the_schema_version(store: MemoryStore) -> None:
    assert store.get(make_schema_version_key()) == encode_height(SCHEMA_VERSION)


def test_invalid_genesis_chain_key() -> None:
    store = MemoryStore()
    with pytest.raises(BlockError):
        init_chain(store, GENESIS, {b"c/height": b"\x00"}, sha256(b"state 0"))
    assert snapshot(store) == []


def test_invalid_no_genesis() -> None:
    store = MemoryStore()
    assert not is_initialized(store)
    with pytest.raises(StoreError) as info:
        get_height(store)
    assert info.value.code == "no_genesis"


def test_deleted_state_key(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    result = BlockResult(result.state_hash, {b"s/a/bob@aba": None}, result.results)
    commit_block(store, block, None, result)
    assert store.get(b"s/a/bob@aba") is None
    assert get_commit(store, 1) is None


def rejects(
    store: MemoryStore, code: str, block: Block, commit: Commit | None, result: BlockResult
) -> None:
    """commit_block raises BlockError(code) and leaves the store byte-identical."""
    before = snapshot(store)
    with pytest.raises(BlockError) as info:
        commit_block(store, block, commit, result)
    assert info.value.code == code
    assert snapshot(store) == before


def test_invalid_height_gap(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    commit_block(store, block, None, result)
    rejects(store, "bad_height", block, None, result)


def test_invalid_prev_hash(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0)])
    block, result = next_block(store, [make_tx(1)])
    forged = build_block(
        chain_id="test",
        height=2,
        time_ms=1,
        prev_hash=b"x" * 32,
        state_hash=result.state_hash,
        proposer="aba",
        validator_set_hash=b"v" * 32,
        last_commit_hash=NO_COMMIT_HASH,
        txs=block.txs,
    )
    rejects(store, "bad_prev_hash", forged, None, result)


def test_invalid_state_hash(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    wrong = BlockResult(sha256(b"wrong"), result.changes, result.results)
    rejects(store, "bad_state_hash", block, None, wrong)


def test_invalid_commit_for_other_block(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    other = Commit(1, 0, b"o" * 32, ())
    rejects(store, "bad_commit", block, other, result)


def test_invalid_results_count(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0), make_tx(1)])
    short = BlockResult(result.state_hash, result.changes, result.results[:1])
    rejects(store, "bad_results", block, None, short)


def test_invalid_rejected_tx_in_block(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    failed = (TxResult(block.txs[0].hash, "insufficient_funds", ()),)
    rejects(store, "bad_results", block, None, BlockResult(result.state_hash, {}, failed))


def test_invalid_change_key(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    bad = BlockResult(result.state_hash, {b"c/height": b"\x00" * 8}, result.results)
    rejects(store, "bad_change_key", block, None, bad)


def test_save_commit(store: MemoryStore) -> None:
    block, result = next_block(store, [make_tx(0)])
    commit_block(store, block, None, result)
    save_commit(store, 1, make_commit(block, 3))
    assert get_commit(store, 1) == make_commit(block, 3)


def test_invalid_save_commit(store: MemoryStore) -> None:
    block = commit_next(store, [make_tx(0)])
    with pytest.raises(BlockError):
        save_commit(store, 2, make_commit(block))
    with pytest.raises(BlockError):
        save_commit(store, 1, Commit(1, 0, b"o" * 32, ()))
    with pytest.raises(BlockError):
        save_commit(store, 0, make_commit(block))
    assert get_commit(store, 1) == make_commit(block)


def test_a_block_replaces_its_parents_commit_in_its_own_write(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = commit_next(store, [make_tx(0)])
    block, result = next_block(store, [make_tx(1)])
    writes: list[int] = []
    real_batch = store.atomic_batch

    def counting_batch(*args: Any, **kwargs: Any) -> Any:
        writes.append(1)
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(store, "atomic_batch", counting_batch)
    commit_block(store, block, make_commit(block), result, make_commit(first, 3))
    assert writes == [1]  # block and the parent's certificate: one atomic write
    assert get_commit(store, 1) == make_commit(first, 3)
    assert get_block(store, 2) == block


def test_a_parent_commit_for_another_block_commits_nothing(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0)])
    block, result = next_block(store, [make_tx(1)])
    with pytest.raises(BlockError):
        commit_block(store, block, make_commit(block), result, Commit(1, 0, b"o" * 32, ()))
    assert get_block(store, 2) is None


def test_missing_reads(store: MemoryStore) -> None:
    assert get_block(store, 5) is None
    assert get_block_by_hash(store, b"n" * 32) is None
    assert get_block_hash(store, 5) is None
    assert get_commit(store, 5) is None
    assert get_tx(store, b"n" * 32) is None
    assert get_tx_location(store, b"n" * 32) is None
    assert get_account_history(store, "nobody@aba", 10) == []


def test_account_history_pages(store: MemoryStore) -> None:
    nonce = 0
    expected: list[tuple[int, int, bytes]] = []
    for height in range(1, 5):
        txs = [make_tx(nonce + i, "dave@aba" if i % 2 else "bob@aba") for i in range(3)]
        nonce += 3
        commit_next(store, txs)
        expected += [(height, i, tx.hash) for i, tx in enumerate(txs) if i % 2]
    expected.reverse()
    assert get_account_history(store, "dave@aba", 100) == expected
    pages: list[tuple[int, int, bytes]] = []
    before = None
    while page := get_account_history(store, "dave@aba", 1, before):
        pages += page
        before = (page[-1][0], page[-1][1])
    assert pages == expected
    assert len(get_account_history(store, "alice@aba", 5)) == 5


def test_leveldb_reopen(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    init_chain(store, GENESIS, GENESIS_STATE, sha256(b"state 0"))
    block = commit_next(store, [make_tx(0)])
    store.close()
    reopened = LevelDBStore(tmp_path / "db")
    assert get_height(reopened) == 1
    assert get_block(reopened, 1) == block
    with pytest.raises(GenesisMismatch):
        init_chain(reopened, sha256(b"another"), {}, sha256(b"x"))
    reopened.close()
