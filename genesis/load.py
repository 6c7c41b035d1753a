"""From a genesis document to height 0: its state changes, state hash, files and store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from genesis.document import Genesis, encode_genesis, genesis_to_json
from genesis.errors import GenesisError
from genesis.validation import GenesisLike, as_genesis
from ledger.chain import init_chain
from ledger.crypto import sha256
from ledger.ids import operator_of
from ledger.kv import KeyValueStore
from ledger.permissions import BANK_ROLE, CENTRAL_BANK_ROLE
from ledger.state import Account, Asset, Bank, Role, State, Supply
from ledger.transition import compute_state_hash

GENESIS_PREV_STATE_HASH = b"\0" * 32


class _EmptyReader:
    """The state before genesis: nothing at all."""

    def get(self, key: bytes) -> bytes | None:
        return None

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return iter(())


def genesis_hash(doc: GenesisLike) -> bytes:
    """Identifies the chain: a store refuses to open with any other genesis."""
    return sha256(encode_genesis(as_genesis(doc)))


def _write_banks(state: State, genesis: Genesis) -> None:
    for bank in genesis.banks:
        state.set_bank(Bank(bank.code, bank.name, bank.operator_key, bank.node_key, bank.validator))
        role = CENTRAL_BANK_ROLE if bank.code == genesis.central_bank else BANK_ROLE
        state.set_account(operator_of(bank.code), Account(bank.operator_key, role, 0, False))
    validators = sorted((b.code, b.node_key) for b in genesis.banks if b.validator)
    state.set_validators(tuple(validators))


def _write_money(state: State, genesis: Genesis) -> None:
    issued: dict[str, int] = {asset.code: 0 for asset in genesis.assets}
    for balance in genesis.balances:
        state.set_balance(balance.account, balance.asset, balance.amount)
        issued[balance.asset] += balance.amount
    for asset in genesis.assets:
        state.set_asset(Asset(asset.code, asset.decimals))
        state.set_supply(asset.code, Supply(issued[asset.code], 0))


def genesis_changes(doc: GenesisLike) -> dict[bytes, bytes]:
    """The height-0 state: every state key genesis writes -> its encoded value.
    Initial balances count as issued supply."""
    genesis = as_genesis(doc)
    state = State(_EmptyReader())
    state.set_params(genesis.params)
    for name, permissions in genesis.roles:
        state.set_role(name, Role(permissions))
    _write_banks(state, genesis)
    for account in genesis.accounts:
        state.set_account(account.account, Account(account.public_key, account.role, 0, False))
    _write_money(state, genesis)
    return {key: value for key, value in state.changes().items() if value is not None}


def genesis_state_hash(doc: GenesisLike) -> bytes:
    return compute_state_hash(GENESIS_PREV_STATE_HASH, genesis_changes(doc))


def load_genesis_into(store: KeyValueStore, doc: GenesisLike) -> bytes:
    """Write genesis as height 0 of an empty store (no-op on a store of the same genesis;
    `GenesisMismatch` on a store of another one). Returns the genesis state hash."""
    genesis = as_genesis(doc)
    changes = genesis_changes(genesis)
    state_hash = compute_state_hash(GENESIS_PREV_STATE_HASH, changes)
    init_chain(store, genesis_hash(genesis), changes, state_hash)
    return state_hash


def load_genesis_file(path: Path) -> Genesis:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise GenesisError(f"genesis file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise GenesisError(f"cannot read genesis file {path}: {exc}") from exc
    return as_genesis(raw)


def save_genesis_file(path: Path, doc: GenesisLike) -> None:
    """Write the document as indented JSON (validating a JSON dict first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(genesis_to_json(as_genesis(doc)), indent=2) + "\n")
