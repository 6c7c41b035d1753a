"""Exchange rates: the rate record, its exact integer maths and rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import pack
from ledger.constants import MAX_AMOUNT
from ledger.errors import CodecError, InvalidAmount
from ledger.fx import (
    Rate,
    compute_source_amount,
    format_rate,
    get_published_rates,
    parse_rate,
)
from ledger.schema import make_fx_rate_key
from ledger.store.memory import MemoryStore

# 1 USD = 4100 KHR: one cent buys 41 riel.
USD_KHR = Rate(41, 1)

terms = st.integers(min_value=1, max_value=10**12)


# The record.
def test_rate_round_trip() -> None:
    assert Rate.decode(Rate(41, 1).encode()) == Rate(41, 1)


@pytest.mark.parametrize(
    "raw",
    [pack([1, 0, 1]), pack([1, 1, 0]), pack([2, 1, 1]), pack([1, 1]), pack([1, -1, 1]), b"\xc1"],
)
def test_invalid_rate_record(raw: bytes) -> None:
    with pytest.raises(CodecError):
        Rate.decode(raw)


# Conversion.
def test_compute_source_amount() -> None:
    assert compute_source_amount(15_000, USD_KHR) == 366  # 365.85... cents, rounded up
    assert compute_source_amount(4_100, USD_KHR) == 100  # exact: no rounding
    assert compute_source_amount(1, USD_KHR) == 1  # one riel still costs a cent
    # 1 KHR = 1/4100 USD: a cent is 1/41 riel
    assert compute_source_amount(100, Rate(1, 41)) == 4_100


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=MAX_AMOUNT), terms, terms)
def test_rounding_is_in_the_operators_favour(amount: int, numerator: int, denominator: int) -> None:
    rate = Rate(numerator, denominator)
    source = compute_source_amount(amount, rate)
    exact = Fraction(amount * denominator, numerator)
    # the payer pays at least the exact value, and less than one minor unit more
    assert exact <= source < exact + 1


# Parsing and display.
def test_parse_rate() -> None:
    assert parse_rate("4100", 2, 0) == USD_KHR
    assert parse_rate("4102.5", 2, 0) == Rate(1641, 40)
    assert parse_rate("0.000244", 0, 2) == Rate(61, 2_500)
    assert parse_rate("1", 2, 2) == Rate(1, 1)


@pytest.mark.parametrize("text", ["", "0", "0.00", "-1", "1e3", "4,100", " 4100", "1." + "9" * 19])
def test_invalid_parse_rate(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_rate(text, 2, 0)


def test_invalid_parse_rate_too_precise() -> None:
    with pytest.raises(InvalidAmount):
        parse_rate("1." + "1" * 18, 18, 0)


def test_format_rate() -> None:
    assert format_rate(USD_KHR, 2, 0) == "4100"
    assert format_rate(Rate(1641, 40), 2, 0) == "4102.5"
    assert format_rate(Rate(1, 41), 0, 2) == "0.000244"  # 1/4100 = 0.00024390...
    assert format_rate(Rate(1, 3), 0, 0) == "0.333333"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=6))
def test_parse_format_round_trip(micros: int, places: int) -> None:
    text = f"{micros // 10**6}.{micros % 10**6:06d}".rstrip("0").rstrip(".")
    assert format_rate(parse_rate(text, 2, 0), 2, 0) == text
    assert parse_rate(text, places, places) == parse_rate(text, 0, 0)


# Reading published rates.
def test_get_published_rates() -> None:
    store = MemoryStore()
    store.put(make_fx_rate_key("alipayplus", "USD", "KHR"), USD_KHR.encode())
    store.put(make_fx_rate_key("alipayplus", "KHR", "USD"), Rate(1, 42).encode())
    store.put(make_fx_rate_key("unionpay", "USD", "KHR"), Rate(40, 1).encode())
    every = get_published_rates(store)
    assert [(r.operator, r.base, r.quote) for r in every] == [
        ("alipayplus", "KHR", "USD"),
        ("alipayplus", "USD", "KHR"),
        ("unionpay", "USD", "KHR"),
    ]
    assert [r.rate for r in get_published_rates(store, "unionpay")] == [Rate(40, 1)]
    assert get_published_rates(store, "alipay") == []
