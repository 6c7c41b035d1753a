"""JSON genesis document -> validated `Genesis`, or a `GenesisError` naming the JSON path.

Shape checks come first (types, required and unknown keys), then cross-references
(unique codes, known roles, assets and accounts, supply within 2**63-1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from genesis.document import (
    Genesis,
    GenesisAccount,
    GenesisAsset,
    GenesisBalance,
    GenesisBank,
)
from genesis.errors import GenesisError
from ledger.commands import MAX_BANK_NAME_BYTES, is_role_name
from ledger.constants import CENTRAL_BANK_CODE, MAX_AMOUNT, PUBLIC_KEY_SIZE
from ledger.errors import InvalidAmount
from ledger.ids import (
    bank_of,
    is_account_id,
    is_bank_code,
    is_operator,
    operator_of,
    parse_amount,
)
from ledger.permissions import ALL_PERMISSIONS, BANK_ROLE, CENTRAL_BANK_ROLE, CUSTOMER_ROLE
from ledger.state import DEFAULT_MAX_CLOCK_SKEW_MS, DEFAULT_TX_TTL_MS, ChainParams
from ledger.tx import MAX_CHAIN_ID_BYTES

GenesisLike = Genesis | Mapping[str, Any]

_ASSET_RE = re.compile(r"[A-Z]{3,8}")
_HEX_KEY_CHARS = 2 * PUBLIC_KEY_SIZE
_REQUIRED_ROLES = (CENTRAL_BANK_ROLE, BANK_ROLE, CUSTOMER_ROLE)
_TOP_KEYS = (
    "chain_id",
    "genesis_time",
    "params",
    "assets",
    "roles",
    "central_bank",
    "banks",
    "accounts",
    "balances",
)


def _fail(path: str, message: str) -> GenesisError:
    return GenesisError(f"{path}: {message}")


def _object(obj: Any, path: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> Any:
    if not isinstance(obj, Mapping):
        raise _fail(path, "expected an object")
    for key in keys:
        if key not in obj:
            raise _fail(f"{path}.{key}" if path else key, "missing")
    for key in obj:
        if key not in keys and key not in optional:
            raise _fail(f"{path}.{key}" if path else str(key), "unknown field")
    return obj


def _list(obj: Any, path: str) -> list[Any]:
    if not isinstance(obj, list):
        raise _fail(path, "expected an array")
    return obj


def _int(obj: Any, path: str, lo: int = 0, hi: int = MAX_AMOUNT) -> int:
    if type(obj) is not int or not lo <= obj <= hi:
        raise _fail(path, f"expected an integer in [{lo}, {hi}]")
    return obj


def _text(obj: Any, path: str, max_bytes: int) -> str:
    if not isinstance(obj, str) or not 0 < len(obj.encode()) <= max_bytes:
        raise _fail(path, f"expected a string of 1 to {max_bytes} bytes")
    return obj


def _matching(obj: Any, path: str, ok: bool, expected: str) -> str:
    if not isinstance(obj, str) or not ok:
        raise _fail(path, f"expected {expected}, got {obj!r}")
    return obj


def _bank_code(obj: Any, path: str) -> str:
    return _matching(obj, path, isinstance(obj, str) and is_bank_code(obj), "[a-z0-9]{2,16}")


def _account_id(obj: Any, path: str) -> str:
    return _matching(obj, path, isinstance(obj, str) and is_account_id(obj), "name@bank")


def _hex_key(obj: Any, path: str, *, optional: bool = False) -> bytes:
    sizes = (0, _HEX_KEY_CHARS) if optional else (_HEX_KEY_CHARS,)
    if not isinstance(obj, str) or len(obj) not in sizes:
        raise _fail(path, f"expected {_HEX_KEY_CHARS} hex chars")
    try:
        return bytes.fromhex(obj)
    except ValueError:
        raise _fail(path, f"expected {_HEX_KEY_CHARS} hex chars") from None


def _unique(values: list[Any], path: str, field: str) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _fail(f"{path}[{i}].{field}", f"duplicate {value!r}")
        seen.add(value)


def _parse_params(obj: Any) -> ChainParams:
    params = _object(obj, "params", (), ("tx_ttl_ms", "max_clock_skew_ms"))
    return ChainParams(
        _int(params.get("tx_ttl_ms", DEFAULT_TX_TTL_MS), "params.tx_ttl_ms", 1),
        _int(
            params.get("max_clock_skew_ms", DEFAULT_MAX_CLOCK_SKEW_MS),
            "params.max_clock_skew_ms",
        ),
    )


def _parse_assets(obj: Any) -> tuple[GenesisAsset, ...]:
    assets = []
    for i, item in enumerate(_list(obj, "assets")):
        path = f"assets[{i}]"
        fields = _object(item, path, ("code", "decimals"))
        code = fields["code"]
        _matching(
            code,
            f"{path}.code",
            isinstance(code, str) and bool(_ASSET_RE.fullmatch(code)),
            "3-8 capital letters",
        )
        assets.append(GenesisAsset(code, _int(fields["decimals"], f"{path}.decimals", 0, 18)))
    _unique([a.code for a in assets], "assets", "code")
    return tuple(assets)


def _parse_roles(obj: Any) -> tuple[tuple[str, frozenset[str]], ...]:
    if not isinstance(obj, Mapping):
        raise _fail("roles", "expected an object of role name -> [permission]")
    roles = []
    for name, perms in obj.items():
        path = f"roles.{name}"
        _matching(name, path, is_role_name(name), "a role name [a-z_]{1,32}")
        for j, perm in enumerate(_list(perms, path)):
            if not isinstance(perm, str) or perm not in ALL_PERMISSIONS:
                raise _fail(f"{path}[{j}]", f"unknown permission {perm!r}")
        roles.append((name, frozenset(perms)))
    for required in _REQUIRED_ROLES:
        if required not in obj:
            raise _fail(f"roles.{required}", "missing")
    return tuple(sorted(roles))


def _parse_bank(item: Any, path: str) -> GenesisBank:
    fields = _object(item, path, ("code", "name", "operator_key", "node_key", "validator"))
    if type(fields["validator"]) is not bool:
        raise _fail(f"{path}.validator", "expected true or false")
    return GenesisBank(
        _bank_code(fields["code"], f"{path}.code"),
        _text(fields["name"], f"{path}.name", MAX_BANK_NAME_BYTES),
        _hex_key(fields["operator_key"], f"{path}.operator_key"),
        _hex_key(fields["node_key"], f"{path}.node_key"),
        fields["validator"],
    )


def _parse_banks(obj: Any) -> tuple[GenesisBank, ...]:
    banks = [_parse_bank(item, f"banks[{i}]") for i, item in enumerate(_list(obj, "banks"))]
    _unique([b.code for b in banks], "banks", "code")
    _unique([b.node_key for b in banks], "banks", "node_key")
    if not any(b.validator for b in banks):
        raise _fail("banks", "at least one bank must be a validator")
    return tuple(banks)


def _parse_account(item: Any, path: str, banks: set[str], roles: set[str]) -> GenesisAccount:
    fields = _object(item, path, ("account", "public_key", "role"))
    account = _account_id(fields["account"], f"{path}.account")
    if bank_of(account) not in banks:
        raise _fail(f"{path}.account", f"unknown bank {bank_of(account)!r}")
    if is_operator(account):
        raise _fail(f"{path}.account", "operator accounts come from `banks`")
    if not isinstance(fields["role"], str) or fields["role"] not in roles:
        raise _fail(f"{path}.role", f"unknown role {fields['role']!r}")
    return GenesisAccount(
        account, _hex_key(fields["public_key"], f"{path}.public_key", optional=True), fields["role"]
    )


def _parse_balance(
    item: Any, path: str, accounts: set[str], decimals: dict[str, int]
) -> GenesisBalance:
    fields = _object(item, path, ("account", "asset", "amount"))
    account = fields["account"]
    if not isinstance(account, str) or account not in accounts:
        raise _fail(f"{path}.account", f"unknown account {account!r}")
    asset = fields["asset"]
    if not isinstance(asset, str) or asset not in decimals:
        raise _fail(f"{path}.asset", f"unknown asset {asset!r}")
    try:
        amount = parse_amount(fields["amount"], decimals[asset])
    except InvalidAmount as exc:
        raise _fail(f"{path}.amount", str(exc)) from None
    return GenesisBalance(account, asset, amount)


def _check_supply(balances: tuple[GenesisBalance, ...]) -> None:
    _unique([(b.account, b.asset) for b in balances], "balances", "account")
    totals: dict[str, int] = {}
    for i, balance in enumerate(balances):
        totals[balance.asset] = totals.get(balance.asset, 0) + balance.amount
        if totals[balance.asset] > MAX_AMOUNT:
            raise _fail(f"balances[{i}].amount", "total supply exceeds 2**63-1")


def _parse_central_bank(obj: Any, banks: tuple[GenesisBank, ...]) -> str:
    if obj != CENTRAL_BANK_CODE or obj not in {b.code for b in banks}:
        raise _fail("central_bank", f"expected {CENTRAL_BANK_CODE!r}, listed in banks")
    return CENTRAL_BANK_CODE


def parse_genesis(doc: Mapping[str, Any]) -> Genesis:
    """Validate a JSON genesis document; the first problem found is raised."""
    top = _object(doc, "", _TOP_KEYS)
    chain_id = _text(top["chain_id"], "chain_id", MAX_CHAIN_ID_BYTES)
    genesis_time = _int(top["genesis_time"], "genesis_time")
    params = _parse_params(top["params"])
    assets = _parse_assets(top["assets"])
    roles = _parse_roles(top["roles"])
    banks = _parse_banks(top["banks"])
    central = _parse_central_bank(top["central_bank"], banks)
    bank_codes, role_names = {b.code for b in banks}, {name for name, _ in roles}
    accounts = tuple(
        _parse_account(item, f"accounts[{i}]", bank_codes, role_names)
        for i, item in enumerate(_list(top["accounts"], "accounts"))
    )
    _unique([a.account for a in accounts], "accounts", "account")
    known = {a.account for a in accounts} | {operator_of(code) for code in bank_codes}
    decimals = {a.code: a.decimals for a in assets}
    balances = tuple(
        _parse_balance(item, f"balances[{i}]", known, decimals)
        for i, item in enumerate(_list(top["balances"], "balances"))
    )
    _check_supply(balances)
    return Genesis(
        chain_id, genesis_time, params, assets, roles, central, banks, accounts, balances
    )


def as_genesis(doc: GenesisLike) -> Genesis:
    """Accept the typed form as is; validate a JSON document."""
    return doc if isinstance(doc, Genesis) else parse_genesis(doc)
