"""The genesis document: its typed form and its two encodings (JSON and canonical msgpack).

The JSON form (what `genesis.json` holds and what `build_testnet` returns) is the shared
document; `Genesis` is its validated, typed form (`genesis.validation.parse_genesis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.codec import pack
from ledger.ids import format_amount
from ledger.state import ChainParams

GENESIS_VERSION = 1


@dataclass(frozen=True, slots=True)
class GenesisAsset:
    code: str
    decimals: int


@dataclass(frozen=True, slots=True)
class GenesisBank:
    code: str
    name: str
    operator_key: bytes
    node_key: bytes
    validator: bool


@dataclass(frozen=True, slots=True)
class GenesisAccount:
    account: str
    public_key: bytes
    role: str


@dataclass(frozen=True, slots=True)
class GenesisBalance:
    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class Genesis:
    """A validated genesis document. Bank operators (admin@<code>) are implied by `banks`."""

    chain_id: str
    genesis_time: int
    params: ChainParams
    assets: tuple[GenesisAsset, ...]
    roles: tuple[tuple[str, frozenset[str]], ...]
    central_bank: str
    banks: tuple[GenesisBank, ...]
    accounts: tuple[GenesisAccount, ...]
    balances: tuple[GenesisBalance, ...]

    def get_decimals(self, asset: str) -> int:
        return next(a.decimals for a in self.assets if a.code == asset)


def genesis_to_json(genesis: Genesis) -> dict[str, Any]:
    """The JSON document, with keys as hex and amounts as exact decimal strings."""
    return {
        "chain_id": genesis.chain_id,
        "genesis_time": genesis.genesis_time,
        "params": {
            "tx_ttl_ms": genesis.params.tx_ttl_ms,
            "max_clock_skew_ms": genesis.params.max_clock_skew_ms,
        },
        "assets": [{"code": a.code, "decimals": a.decimals} for a in genesis.assets],
        "roles": {name: sorted(perms) for name, perms in genesis.roles},
        "central_bank": genesis.central_bank,
        "banks": [
            {
                "code": b.code,
                "name": b.name,
                "operator_key": b.operator_key.hex(),
                "node_key": b.node_key.hex(),
                "validator": b.validator,
            }
            for b in genesis.banks
        ],
        "accounts": [
            {"account": a.account, "public_key": a.public_key.hex(), "role": a.role}
            for a in genesis.accounts
        ],
        "balances": [
            {
                "account": b.account,
                "asset": b.asset,
                "amount": format_amount(b.amount, genesis.get_decimals(b.asset)),
            }
            for b in genesis.balances
        ],
    }


def encode_genesis(genesis: Genesis) -> bytes:
    """Canonical msgpack of the whole document (fixed-order arrays, roles sorted)."""
    return pack(
        [
            GENESIS_VERSION,
            genesis.chain_id,
            genesis.genesis_time,
            [genesis.params.tx_ttl_ms, genesis.params.max_clock_skew_ms],
            [[a.code, a.decimals] for a in genesis.assets],
            [[name, sorted(perms)] for name, perms in sorted(genesis.roles)],
            genesis.central_bank,
            [[b.code, b.name, b.operator_key, b.node_key, b.validator] for b in genesis.banks],
            [[a.account, a.public_key, a.role] for a in genesis.accounts],
            [[b.account, b.asset, b.amount] for b in genesis.balances],
        ]
    )
