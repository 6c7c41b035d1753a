"""Genesis -> height 0: state changes, state hash, store loading and file round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesis.builder import build_testnet
from genesis.errors import GenesisError
from genesis.load import (
    GENESIS_PREV_STATE_HASH,
    genesis_changes,
    genesis_hash,
    genesis_state_hash,
    load_genesis_file,
    load_genesis_into,
    save_genesis_file,
)
from genesis.validation import parse_genesis
from ledger.chain import get_genesis_hash, get_height, get_state_hash
from ledger.errors import GenesisMismatch
from ledger.schema import STATE_PREFIX
from ledger.state import Account, State, Supply, get_validator_set
from ledger.store.leveldb import LevelDBStore
from ledger.store.memory import MemoryStore
from ledger.transition import compute_state_hash

DOC, KEYS = build_testnet("bakong-test", validators=4, observers=1, seed=b"load")


def test_basic() -> None:
    store = MemoryStore()
    state_hash = load_genesis_into(store, DOC)
    assert state_hash == genesis_state_hash(DOC)
    assert state_hash == compute_state_hash(GENESIS_PREV_STATE_HASH, genesis_changes(DOC))
    assert get_height(store) == 0 and get_state_hash(store, 0) == state_hash
    assert get_genesis_hash(store) == genesis_hash(DOC)
    state = State(store)
    assert state.get_account("admin@nbc") == Account(
        KEYS["nbc"].operator.public_key, "central_bank", 0, False
    )
    assert state.get_account("admin@aclb").role == "bank"  # type: ignore[union-attr]
    assert state.get_balance("admin@aclb", "USD") == 1_000_000_000
    assert state.get_supply("KHR") == Supply(4 * 10_000_000_000, 0)
    validators = get_validator_set(store, 1)
    assert [code for code, _ in validators] == ["aba", "aclb", "nbc", "wing"]
    assert dict(validators)["nbc"] == KEYS["nbc"].node.public_key


def test_changes_are_state_keys_only() -> None:
    changes = genesis_changes(DOC)
    assert all(key.startswith(STATE_PREFIX + b"/") for key in changes)
    assert genesis_changes(parse_genesis(DOC)) == changes


def test_hash_depends_on_content() -> None:
    other, _ = build_testnet("bakong-test", validators=4, observers=1, seed=b"other")
    assert genesis_hash(DOC) == genesis_hash(parse_genesis(DOC))
    assert genesis_hash(DOC) != genesis_hash(other)


def test_reload_same_genesis_is_a_no_op(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    try:
        first = load_genesis_into(store, DOC)
        assert load_genesis_into(store, DOC) == first
    finally:
        store.close()


def test_invalid_store_of_another_genesis(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    other, _ = build_testnet("another-chain", seed=b"load")
    try:
        load_genesis_into(store, DOC)
        with pytest.raises(GenesisMismatch):
            load_genesis_into(store, other)
    finally:
        store.close()


def test_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    save_genesis_file(path, DOC)
    assert load_genesis_file(path) == parse_genesis(DOC)


def test_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="not found"):
        load_genesis_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GenesisError):
        load_genesis_file(tmp_path / "bad.json")
