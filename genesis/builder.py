"""The default testnet layout: central bank `nbc`, N-1 more validator banks, M observers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genesis.document import (
    Genesis,
    GenesisAsset,
    GenesisBalance,
    GenesisBank,
    genesis_to_json,
)
from ledger.constants import CENTRAL_BANK_CODE
from ledger.crypto import PrivateKey, sha256
from ledger.ids import operator_of
from ledger.permissions import DEFAULT_ROLES
from ledger.state import ChainParams

# Real-sounding Cambodian commercial banks, in the order validators then observers use them.
BANK_NAMES: tuple[tuple[str, str], ...] = (
    ("aclb", "ACLEDA Bank"),
    ("aba", "ABA Bank"),
    ("wing", "Wing Bank"),
    ("canadia", "Canadia Bank"),
    ("ppcb", "Phnom Penh Commercial Bank"),
    ("sathapana", "Sathapana Bank"),
    ("prince", "Prince Bank"),
    ("ftb", "Foreign Trade Bank of Cambodia"),
    ("amret", "Amret"),
    ("hattha", "Hattha Bank"),
    ("chipmong", "Chip Mong Commercial Bank"),
    ("vattanac", "Vattanac Bank"),
)
CENTRAL_BANK_NAME = "National Bank of Cambodia"
ASSETS = (GenesisAsset("KHR", 0), GenesisAsset("USD", 2))
# Each commercial bank's settlement account starts with 10 billion riel and 10 million dollars.
INITIAL_SETTLEMENT = {"KHR": 10_000_000_000, "USD": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class BankKeys:
    operator: PrivateKey
    node: PrivateKey


def _bank_names(count: int) -> list[tuple[str, str]]:
    extra = [(f"bank{i:02d}", f"Testnet Bank {i}") for i in range(len(BANK_NAMES), count)]
    return [*BANK_NAMES, *extra][:count]


def _make_keys(code: str, seed: bytes | None) -> BankKeys:
    if seed is None:
        return BankKeys(PrivateKey.generate(), PrivateKey.generate())
    return BankKeys(
        PrivateKey(sha256(seed + f"/{code}/operator".encode())),
        PrivateKey(sha256(seed + f"/{code}/node".encode())),
    )


def build_testnet_genesis(
    chain_id: str,
    validators: int = 4,
    observers: int = 1,
    genesis_time: int = 0,
    seed: bytes | None = None,
) -> tuple[Genesis, dict[str, BankKeys]]:
    """The typed testnet genesis and every bank's keys. Keys are fresh random ones unless
    a `seed` is given (then they are derived from it, for reproducible tests)."""
    if validators < 1 or observers < 0:
        raise ValueError("a testnet needs at least one validator and no negative observers")
    layout = [(CENTRAL_BANK_CODE, CENTRAL_BANK_NAME, True)]
    layout += [(code, name, True) for code, name in _bank_names(validators - 1)]
    layout += [(c, n, False) for c, n in _bank_names(validators - 1 + observers)[validators - 1 :]]
    keys = {code: _make_keys(code, seed) for code, _, _ in layout}
    banks = tuple(
        GenesisBank(code, name, keys[code].operator.public_key, keys[code].node.public_key, val)
        for code, name, val in layout
    )
    balances = tuple(
        GenesisBalance(operator_of(code), asset, amount)
        for code, _, _ in layout[1:]
        for asset, amount in INITIAL_SETTLEMENT.items()
    )
    roles = tuple(sorted(DEFAULT_ROLES.items()))
    genesis = Genesis(
        chain_id, genesis_time, ChainParams(), ASSETS, roles, CENTRAL_BANK_CODE, banks, (), balances
    )
    return genesis, keys


def build_testnet(
    chain_id: str,
    validators: int = 4,
    observers: int = 1,
    genesis_time: int = 0,
    seed: bytes | None = None,
) -> tuple[dict[str, Any], dict[str, BankKeys]]:
    """The testnet genesis as its JSON document (what genesis.json holds) and the keys."""
    genesis, keys = build_testnet_genesis(chain_id, validators, observers, genesis_time, seed)
    return genesis_to_json(genesis), keys
