"""build_testnet: nbc plus N-1 validator banks and M observers, with their keys."""

from __future__ import annotations

import pytest

from genesis.builder import build_testnet, build_testnet_genesis
from genesis.validation import parse_genesis
from ledger.ids import is_bank_code


def test_basic() -> None:
    doc, keys = build_testnet("bakong-testnet", validators=4, observers=1, genesis_time=123)
    genesis = parse_genesis(doc)
    assert genesis.central_bank == "nbc" and genesis.genesis_time == 123
    assert [(b.code, b.validator) for b in genesis.banks] == [
        ("nbc", True),
        ("aclb", True),
        ("aba", True),
        ("wing", True),
        ("canadia", False),
    ]
    assert set(keys) == {b.code for b in genesis.banks}
    for bank in genesis.banks:
        assert keys[bank.code].operator.public_key == bank.operator_key
        assert keys[bank.code].node.public_key == bank.node_key
    assert [a.code for a in genesis.assets] == ["KHR", "USD"]
    assert {b.account for b in genesis.balances} == {
        "admin@aclb",
        "admin@aba",
        "admin@wing",
        "admin@canadia",
    }


def test_many_banks_get_valid_distinct_codes() -> None:
    genesis, keys = build_testnet_genesis("big", validators=10, observers=8, seed=b"s")
    codes = [b.code for b in genesis.banks]
    assert len(codes) == len(set(codes)) == 18 and all(is_bank_code(c) for c in codes)
    assert sum(b.validator for b in genesis.banks) == 10
    assert len({k.node.public_key for k in keys.values()}) == 18


def test_seed_makes_it_reproducible() -> None:
    assert build_testnet("x", seed=b"a")[0] == build_testnet("x", seed=b"a")[0]
    assert build_testnet("x", seed=b"a")[0] != build_testnet("x", seed=b"b")[0]
    assert build_testnet("x")[0] != build_testnet("x")[0]


def test_invalid_no_validators() -> None:
    with pytest.raises(ValueError):
        build_testnet("x", validators=0)
