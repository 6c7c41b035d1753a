"""process_block_header: a rule per check, each refused with its stable code."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ledger.block import BlockHeader, compute_validator_set_hash
from ledger.constants import BLOCK_VERSION
from ledger.errors import BlockError
from ledger.transition import process_block_header

CHAIN = "test-chain"
VALIDATORS = [("aba", b"\x01" * 32), ("aclb", b"\x02" * 32), ("nbc", b"\x03" * 32)]
PARENT = BlockHeader(
    BLOCK_VERSION,
    CHAIN,
    4,
    1_000,
    b"\x05" * 32,
    b"\x06" * 32,
    b"\x07" * 32,
    "aba",
    compute_validator_set_hash(VALIDATORS),
    b"\x08" * 32,
)


def child(**changes: Any) -> BlockHeader:
    base = replace(PARENT, height=5, time_ms=1_000, prev_hash=PARENT.hash, proposer="aclb")
    return replace(base, **changes)


def test_basic() -> None:
    process_block_header(child(), PARENT, PARENT.hash, CHAIN, VALIDATORS)
    genesis_hash = b"\x09" * 32
    first = child(height=1, prev_hash=genesis_hash)
    process_block_header(first, None, genesis_hash, CHAIN, VALIDATORS)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"chain_id": "other"}, "wrong_chain"),
        ({"height": 6}, "bad_height"),
        ({"height": 4}, "bad_height"),
        ({"prev_hash": b"\x00" * 32}, "bad_prev_hash"),
        ({"validator_set_hash": b"\x00" * 32}, "bad_validator_set"),
        ({"proposer": "wing"}, "bad_proposer"),
        ({"time_ms": 999}, "bad_time"),
    ],
)
def test_invalid_header(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(BlockError) as err:
        process_block_header(child(**changes), PARENT, PARENT.hash, CHAIN, VALIDATORS)
    assert err.value.code == code


def test_invalid_validator_order_is_another_set() -> None:
    reordered = list(reversed(VALIDATORS))
    with pytest.raises(BlockError) as err:
        process_block_header(child(), PARENT, PARENT.hash, CHAIN, reordered)
    assert err.value.code == "bad_validator_set"
