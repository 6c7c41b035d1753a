"""State records, the journaled overlay and the validator-set rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import pack
from ledger.constants import MAX_AMOUNT
from ledger.errors import CodecError
from ledger.schema import (
    make_account_key,
    make_balance_key,
    make_pending_validators_key,
    make_validators_key,
)
from ledger.state import (
    Account,
    Asset,
    Bank,
    ChainParams,
    Role,
    State,
    Supply,
    decode_balance,
    decode_validator_set,
    encode_balance,
    encode_validator_set,
    get_validator_set,
)
from ledger.store.memory import MemoryStore

KEY = bytes(range(32))
RECORDS = [
    Account(KEY, "customer", 7, False),
    Account(b"", "customer", 0, True),
    Bank("aclb", "ACLEDA", KEY, bytes(32), True),
    Asset("USD", 2),
    Supply(100, 40),
    Role(frozenset({"transfer_own", "issue"})),
    ChainParams(1_000, 10),
]


def test_basic() -> None:
    for record in RECORDS:
        assert type(record).decode(record.encode()) == record
    assert decode_balance(encode_balance(12)) == 12
    validators = (("aclb", KEY), ("nbc", bytes(32)))
    assert decode_validator_set(encode_validator_set(validators)) == validators


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (Account.decode, pack([2, KEY, "customer", 0, False])),
        (Account.decode, pack([1, KEY[:3], "customer", 0, False])),
        (Account.decode, pack([1, KEY, "customer", -1, False])),
        (Account.decode, pack([1, KEY, "customer", 0, 0])),
        (Bank.decode, pack([1, "aclb", "A", KEY, KEY])),
        (Supply.decode, pack([1, 1, "2"])),
        (Role.decode, pack([1, "transfer"])),
        (Account.decode, pack([True, KEY, "customer", 0, False])),
        (Account.decode, pack([1, KEY, "customer", 0, False]) + b"\x00"),
        (Account.decode, pack({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})),
        (Account.decode, b"\xa5abcde"),
        (Account.decode, pack([1, KEY, "r" * 33, 0, False])),
        (decode_balance, pack(-5)),
        (decode_balance, pack(1) + b"\x00"),
        (decode_balance, encode_balance(5)[1:]),
        (decode_balance, (MAX_AMOUNT + 1).to_bytes(8, "big")),
        (decode_validator_set, pack([1, [["aclb"]]])),
    ],
)
def test_invalid_record(decode: object, data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)  # type: ignore[operator]


def test_balance_is_fixed_width_big_endian() -> None:
    assert encode_balance(1) == bytes(7) + b"\x01"
    assert decode_balance(encode_balance(MAX_AMOUNT)) == MAX_AMOUNT


account_fields = st.tuples(
    st.integers(0, 2) | st.booleans(),
    st.sampled_from([b"", KEY, KEY[:5]]) | st.text(max_size=2),
    st.sampled_from(["customer", "bank", "r" * 32, "r" * 33, "ré" * 16, "ré" * 17]) | st.binary(),
    st.sampled_from([0, 1, MAX_AMOUNT, MAX_AMOUNT + 1, -1, True]) | st.text(max_size=1),
    st.booleans() | st.integers(0, 1) | st.none(),
)


@settings(max_examples=300, deadline=None)
@given(account_fields)
def test_account_fast_decode_agrees_with_strict(fields: tuple[object, ...]) -> None:
    """The trusted fast path accepts exactly what the strict decoder accepts."""
    data = pack(list(fields))
    try:
        expected: Account | None = Account.decode_strictly(data)
    except CodecError:
        expected = None
    if expected is None:
        with pytest.raises(CodecError):
            Account.decode(data)
    else:
        assert Account.decode(data) == expected


def seeded_store() -> MemoryStore:
    store = MemoryStore()
    store.put(make_account_key("a@bb"), Account(KEY, "customer", 0, False).encode())
    store.put(make_balance_key("a@bb", "KHR"), encode_balance(10))
    return store


def test_overlay_reads_through_and_writes_only_in_changes() -> None:
    store = seeded_store()
    state = State(store)
    assert state.get_balance("a@bb", "KHR") == 10 and state.get_balance("x@bb", "KHR") == 0
    state.set_balance("a@bb", "KHR", 3)
    state.set_balance("x@bb", "KHR", 7)
    assert state.get_balance("a@bb", "KHR") == 3
    assert store.get(make_balance_key("a@bb", "KHR")) == encode_balance(10)
    assert state.changes() == {
        make_balance_key("a@bb", "KHR"): encode_balance(3),
        make_balance_key("x@bb", "KHR"): encode_balance(7),
    }


def test_zero_balance_is_a_delete() -> None:
    state = State(seeded_store())
    state.set_balance("a@bb", "KHR", 0)
    assert state.changes() == {make_balance_key("a@bb", "KHR"): None}


def test_rewriting_the_stored_value_is_no_change() -> None:
    state = State(seeded_store())
    state.set_balance("a@bb", "KHR", 4)
    state.set_balance("a@bb", "KHR", 10)
    state.set_account("a@bb", Account(KEY, "customer", 0, False))
    assert state.changes() == {}


def test_blind_write_reads_the_stored_value_first() -> None:
    state = State(seeded_store())
    state.set_account("a@bb", Account(KEY, "customer", 0, False))
    state.set_account("new@bb", Account(KEY, "customer", 0, False))
    assert state.changes() == {
        make_account_key("new@bb"): Account(KEY, "customer", 0, False).encode()
    }


def test_rollback_restores_exactly() -> None:
    state = State(seeded_store())
    state.set_balance("a@bb", "KHR", 9)
    before = state.changes()
    state.begin()
    state.set_balance("a@bb", "KHR", 1)
    state.set_balance("new@bb", "USD", 5)
    state.set_account("a@bb", Account(KEY, "customer", 1, True))
    state.set_account("new@bb", Account(b"", "customer", 0, False))
    state.rollback()
    assert state.changes() == before
    assert state.get_balance("a@bb", "KHR") == 9
    assert state.get_account("a@bb") == Account(KEY, "customer", 0, False)
    assert state.get_account("new@bb") is None


def test_commit_keeps_writes() -> None:
    state = State(seeded_store())
    state.begin()
    state.set_balance("a@bb", "KHR", 1)
    state.commit()
    state.begin()
    state.rollback()
    assert state.changes() == {make_balance_key("a@bb", "KHR"): encode_balance(1)}


def test_validator_set_for_height() -> None:
    store = MemoryStore()
    current = (("nbc", KEY),)
    assert get_validator_set(store, 1) == ()
    store.put(make_validators_key(), encode_validator_set(current))
    store.put(make_pending_validators_key(6), encode_validator_set((("aclb", KEY),)))
    store.put(make_pending_validators_key(7), encode_validator_set((("wing", KEY),)))
    assert get_validator_set(store, 5) == current
    assert get_validator_set(store, 6) == (("aclb", KEY),)
    assert get_validator_set(store, 7) == (("wing", KEY),)
