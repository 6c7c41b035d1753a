"""parse_genesis: a valid document parses; each bad field is named by its JSON path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from genesis.builder import build_testnet
from genesis.document import genesis_to_json
from genesis.errors import GenesisError
from genesis.validation import as_genesis, parse_genesis

DOC, _KEYS = build_testnet("bakong-test", validators=4, observers=1, seed=b"validation")


def edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    edit(doc)
    return doc


def test_basic() -> None:
    genesis = parse_genesis(DOC)
    assert genesis.chain_id == "bakong-test"
    assert [b.code for b in genesis.banks][:2] == ["nbc", "aclb"]
    assert genesis_to_json(genesis) == DOC
    assert as_genesis(genesis) is genesis


def test_amounts_are_exact_decimal_strings() -> None:
    doc = edited(
        lambda d: d["balances"].append({"account": "admin@nbc", "asset": "USD", "amount": "12.50"})
    )
    genesis = parse_genesis(doc)
    assert genesis.balances[-1].amount == 1250
    assert genesis_to_json(genesis)["balances"][-1]["amount"] == "12.50"


def test_params_default() -> None:
    genesis = parse_genesis(edited(lambda d: d.__setitem__("params", {})))
    assert genesis.params.tx_ttl_ms == 3_600_000 and genesis.params.max_clock_skew_ms == 60_000


def set_path(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


INVALID = [
    (set_path(("chain_id",), ""), "chain_id"),
    (set_path(("genesis_time",), -1), "genesis_time"),
    (set_path(("genesis_time",), "now"), "genesis_time"),
    (set_path(("params", "tx_ttl_ms"), 0), "params.tx_ttl_ms"),
    (set_path(("params", "block_ms"), 5), "params.block_ms"),
    (set_path(("assets", 1, "code"), "usd"), "assets[1].code"),
    (set_path(("assets", 1, "code"), "KHR"), "assets[1].code"),
    (set_path(("assets", 0, "decimals"), 19), "assets[0].decimals"),
    (set_path(("roles", "bank"), ["fly"]), "roles.bank[0]"),
    (lambda d: d["roles"].pop("customer"), "roles.customer"),
    (set_path(("central_bank",), "aclb"), "central_bank"),
    (set_path(("banks", 2, "node_key"), "abc"), "banks[2].node_key"),
    (set_path(("banks", 2, "node_key"), "zz" * 32), "banks[2].node_key"),
    (set_path(("banks", 1, "code"), "ACLB"), "banks[1].code"),
    (set_path(("banks", 3, "code"), "aclb"), "banks[3].code"),
    (set_path(("banks", 1, "validator"), "yes"), "banks[1].validator"),
    (lambda d: d["banks"][1].pop("name"), "banks[1].name"),
    (
        set_path(("accounts",), [{"account": "x@zzz", "public_key": "", "role": "customer"}]),
        "accounts[0].account",
    ),
    (
        set_path(("accounts",), [{"account": "admin@aclb", "public_key": "", "role": "customer"}]),
        "accounts[0].account",
    ),
    (
        set_path(("accounts",), [{"account": "x@aclb", "public_key": "", "role": "boss"}]),
        "accounts[0].role",
    ),
    (set_path(("balances", 0, "amount"), "1.5"), "balances[0].amount"),
    (set_path(("balances", 0, "amount"), 100), "balances[0].amount"),
    (set_path(("balances", 0, "asset"), "EUR"), "balances[0].asset"),
    (set_path(("balances", 0, "account"), "ghost@aclb"), "balances[0].account"),
    (set_path(("balances", 1, "amount"), str(2**63 - 1)), "balances[1].amount"),
    (set_path(("extra",), 1), "extra"),
    (lambda d: d.pop("banks"), "banks"),
]


@pytest.mark.parametrize(("edit", "path"), INVALID)
def test_invalid_field_named_by_path(edit: Callable[[dict[str, Any]], None], path: str) -> None:
    with pytest.raises(GenesisError) as info:
        parse_genesis(edited(edit))
    assert info.value.code == "invalid_genesis"
    assert str(info.value).startswith(path + ":"), str(info.value)


def test_invalid_no_validator() -> None:
    def no_validators(doc: dict[str, Any]) -> None:
        for bank in doc["banks"]:
            bank["validator"] = False

    with pytest.raises(GenesisError, match=r"^banks: at least one"):
        parse_genesis(edited(no_validators))


def test_invalid_duplicate_balance() -> None:
    doc = edited(lambda d: d["balances"].append(dict(d["balances"][0])))
    with pytest.raises(GenesisError, match=r"^balances\[\d+\]"):
        parse_genesis(doc)


def test_invalid_not_an_object() -> None:
    with pytest.raises(GenesisError):
        parse_genesis([])  # type: ignore[arg-type]
