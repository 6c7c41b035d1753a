"""Exchange rates: the rate record, its exact integer maths and rounding."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.codec import pack
from ledger.commands import (
    Command,
    Freeze,
    FxTransfer,
    SetRate,
    Transfer,
    decode_command,
    encode_command,
)
from ledger.constants import MAX_AMOUNT
from ledger.errors import CodecError, InvalidAmount, MalformedTx
from ledger.fx import (
    Rate,
    compute_source_amount,
    format_rate,
    get_published_rates,
    parse_rate,
)
from ledger.khqr import KHQR, encode_khqr, khqr_md5
from ledger.schema import make_balance_key, make_fx_rate_key
from ledger.state import encode_balance
from ledger.store.memory import MemoryStore
from tests.ledger.helpers import BALANCES, BANKS, GENESIS_TIME, Ledger, make_genesis, make_key
from tests.ledger.test_properties import check_rejected_change_nothing, check_supply

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


# The commands and their rules, on a ledger with a cross-border operator.
OPERATOR = "admin@alipayplus"
FX_BALANCES = (*BALANCES, (OPERATOR, "KHR", 10_000_000), (OPERATOR, "USD", 100_000))
# carol@wing's dynamic code for 15,000 KHR, valid for a day from genesis
CODE = encode_khqr(
    KHQR(
        "carol@wing",
        "Carol Shop",
        "Phnom Penh",
        "KHR",
        amount=15_000,
        created_ms=GENESIS_TIME,
        expires_ms=GENESIS_TIME + 86_400_000,
    )
)
MD5 = khqr_md5(CODE)


def fx_ledger(
    rate: Rate | None = USD_KHR, balances: Iterable[tuple[str, str, int]] = FX_BALANCES
) -> Ledger:
    ledger = Ledger(make_genesis(banks=(*BANKS, ("alipayplus", False)), balances=balances))
    if rate is not None:
        set_rate = SetRate("alipayplus", "USD", "KHR", rate.numerator, rate.denominator)
        assert ledger.apply_tx(ledger.sign("admin@nbc", set_rate)).code is None
    return ledger


def pay_khr(amount: int = 15_000, cost: int = 366, **fields: Any) -> FxTransfer:
    """alice@aclb pays carol@wing `amount` riel from her dollars through alipayplus."""
    base: dict[str, Any] = {"from_": "alice@aclb", "to": "carol@wing", "operator": "alipayplus"}
    base |= {"source_asset": "USD", "source_amount": cost, "asset": "KHR", "amount": amount}
    return FxTransfer(**(base | fields))


def supplies(ledger: Ledger) -> dict[str, int]:
    state = ledger.state()
    return {a: state.get_supply(a).issued - state.get_supply(a).redeemed for a in ("KHR", "USD")}


def test_codec_round_trip() -> None:
    for cmd in (SetRate("alipayplus", "USD", "KHR", 41, 1), pay_khr(khqr=CODE)):
        assert decode_command(encode_command(cmd)) == cmd


@pytest.mark.parametrize(
    "build",
    [
        lambda: SetRate("alipayplus", "USD", "USD", 1, 1),
        lambda: SetRate("alipayplus", "USD", "KHR", 0, 1),
        lambda: SetRate("alipayplus", "USD", "KHR", 1, MAX_AMOUNT + 1),
        lambda: SetRate("Alipay+", "USD", "KHR", 1, 1),
        lambda: pay_khr(source_asset="KHR"),
        lambda: pay_khr(cost=0),
        lambda: pay_khr(operator="no such bank"),
        lambda: pay_khr(reference="x" * 65),
    ],
)
def test_invalid_malformed_command(build: Callable[[], Command]) -> None:
    with pytest.raises(MalformedTx):
        build()


def test_set_rate_basic() -> None:
    ledger = fx_ledger()
    assert ledger.state().get_rate("alipayplus", "USD", "KHR") == USD_KHR
    assert ledger.state().get_rate("alipayplus", "KHR", "USD") is None
    result = ledger.apply_tx(ledger.sign("admin@nbc", SetRate("alipayplus", "USD", "KHR", 40, 1)))
    assert result.code is None and result.accounts == (OPERATOR, "admin@nbc")
    assert ledger.state().get_rate("alipayplus", "USD", "KHR") == Rate(40, 1)


def test_invalid_set_rate_not_central_bank() -> None:
    ledger = fx_ledger(rate=None)
    result = ledger.apply_tx(
        ledger.sign(
            "admin@alipayplus", SetRate("alipayplus", "USD", "KHR", 41, 1), key=make_key(OPERATOR)
        )
    )
    assert result.code == "permission_denied"


def test_invalid_set_rate_unknown_bank() -> None:
    ledger = fx_ledger(rate=None)
    result = ledger.apply_tx(ledger.sign("admin@nbc", SetRate("unionpay", "USD", "KHR", 41, 1)))
    assert result.code == "unknown_bank"


def test_invalid_set_rate_unknown_asset() -> None:
    ledger = fx_ledger(rate=None)
    result = ledger.apply_tx(ledger.sign("admin@nbc", SetRate("alipayplus", "EUR", "KHR", 41, 1)))
    assert result.code == "unknown_asset"


def fx(ledger: Ledger, cmd: FxTransfer, signer: str = "alice@aclb") -> str | None:
    return ledger.apply_tx(ledger.sign(signer, cmd)).code


def test_fx_transfer_basic() -> None:
    ledger = fx_ledger()
    before = supplies(ledger)
    result = ledger.apply_tx(ledger.sign("alice@aclb", pay_khr(khqr=CODE)))
    assert result.code is None
    assert result.accounts == (OPERATOR, "alice@aclb", "carol@wing")
    assert ledger.balance("alice@aclb", "USD") == 10_000 - 366
    assert ledger.balance(OPERATOR, "USD") == 100_000 + 366
    assert ledger.balance(OPERATOR, "KHR") == 10_000_000 - 15_000
    assert ledger.balance("carol@wing", "KHR") == 50_000 + 15_000
    assert ledger.balance("alice@aclb", "KHR") == 50_000
    assert supplies(ledger) == before
    assert ledger.state().is_reference_paid(MD5)


def test_fx_transfer_custodial() -> None:
    ledger = fx_ledger()
    assert fx(ledger, pay_khr(), signer="admin@aclb") is None
    assert ledger.balance("carol@wing", "KHR") == 65_000


def test_fx_transfer_exact_rate_needs_no_rounding() -> None:
    ledger = fx_ledger()
    assert fx(ledger, pay_khr(amount=4_100, cost=100)) is None
    assert ledger.balance("alice@aclb", "USD") == 9_900


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        (pay_khr(to="alice@aclb"), "invalid_command"),
        (pay_khr(to=OPERATOR), "invalid_command"),
        (pay_khr(to="ghost@wing"), "unknown_account"),
        (pay_khr(operator="unionpay"), "unknown_account"),
        (pay_khr(operator="canadia"), "unknown_rate"),
        (pay_khr(operator="wing"), "unknown_rate"),
        (pay_khr(source_asset="EUR"), "unknown_asset"),
        (pay_khr(source_asset="KHR", asset="USD", amount=1, cost=41), "unknown_rate"),
        (pay_khr(cost=365), "rate_changed"),
        (pay_khr(cost=367), "rate_changed"),
        (pay_khr(amount=500_000, cost=12_196), "insufficient_funds"),
        (pay_khr(amount=10_000_001, cost=243_903), "insufficient_funds"),
    ],
)
def test_invalid_fx_transfer(cmd: FxTransfer, code: str) -> None:
    ledger = fx_ledger()
    before = ledger.dump()
    assert (
        fx(ledger, cmd, signer="admin@nbc" if cmd.from_ != "alice@aclb" else "alice@aclb") == code
    )
    assert {k: v for k, v in ledger.dump().items() if not k.startswith(b"s/a/")} == {
        k: v for k, v in before.items() if not k.startswith(b"s/a/")
    }


def test_invalid_fx_transfer_operator_lacks_liquidity() -> None:
    balances = (*BALANCES, (OPERATOR, "KHR", 10_000), ("admin@aclb", "USD", 1_000_000))
    ledger = fx_ledger(balances=balances)
    assert fx(ledger, pay_khr()) == "insufficient_liquidity"
    assert ledger.balance("alice@aclb", "USD") == 10_000


def test_invalid_fx_transfer_frozen_operator() -> None:
    ledger = fx_ledger()
    assert ledger.apply_tx(ledger.sign("admin@nbc", Freeze(OPERATOR))).code is None
    assert fx(ledger, pay_khr()) == "account_frozen"


def test_invalid_fx_transfer_overflow() -> None:
    # unreachable while supply <= 2**63-1, so the balance is planted behind the ledger's back
    ledger = fx_ledger()
    ledger.store.put(make_balance_key("bob@aclb", "KHR"), encode_balance(MAX_AMOUNT - 14_999))
    assert fx(ledger, pay_khr(to="bob@aclb")) == "overflow"


def test_invalid_fx_transfer_not_the_payers_funds() -> None:
    ledger = fx_ledger()
    assert fx(ledger, pay_khr(), signer="bob@aclb") == "permission_denied"
    assert fx(ledger, pay_khr(), signer="admin@wing") == "permission_denied"


def test_invalid_fx_transfer_already_paid() -> None:
    ledger = fx_ledger()
    assert fx(ledger, pay_khr(khqr=CODE)) is None
    assert fx(ledger, pay_khr(khqr=CODE)) == "already_paid"
    # nor a plain transfer with the same code
    transfer = Transfer("alice@aclb", "carol@wing", "KHR", 15_000, "", CODE)
    assert ledger.apply_tx(ledger.sign("alice@aclb", transfer)).code == "already_paid"
    assert ledger.balance("carol@wing", "KHR") == 65_000


def test_invalid_fx_transfer_code_binds_the_payee_side() -> None:
    ledger = fx_ledger()
    # another amount delivered, or another payee, than the code asks
    assert fx(ledger, pay_khr(amount=1, cost=1, khqr=CODE)) == "reference_mismatch"
    assert fx(ledger, pay_khr(to="bob@aclb", khqr=CODE)) == "reference_mismatch"
    assert not ledger.state().is_reference_paid(MD5)


# Supply per asset holds through any mix of conversions, transfers and rate changes.
payers = st.sampled_from(["alice@aclb", "carol@wing", OPERATOR, "bob@aclb"])
payees = st.sampled_from(["alice@aclb", "carol@wing", "bob@aclb", OPERATOR, "ghost@aclb"])
fx_assets = st.sampled_from(["KHR", "USD"])
fx_amounts = st.integers(1, 60_000)
references = st.sampled_from(["", MD5, "0" * 32, MD5 + ":static", "INV-1"])
codes = st.sampled_from(["", "", CODE])


@st.composite
def fx_action(draw: st.DrawFn) -> tuple[str, Command]:
    kind = draw(st.sampled_from(["fx", "fx", "fx", "transfer", "rate"]))
    if kind == "rate":
        base, quote = draw(st.permutations(["KHR", "USD"]))
        rate = SetRate("alipayplus", base, quote, draw(terms), draw(terms))
        return "admin@nbc", rate
    payer, payee, asset = draw(payers), draw(payees), draw(fx_assets)
    if kind == "transfer":
        amount = draw(fx_amounts)
        return "admin@nbc", Transfer(payer, payee, asset, amount, draw(references), draw(codes))
    source = "USD" if asset == "KHR" else "KHR"
    cost = draw(st.integers(1, 60_000))
    amount = draw(fx_amounts)
    cmd = FxTransfer(
        payer, payee, "alipayplus", source, cost, asset, amount, draw(references), draw(codes)
    )
    return "admin@nbc", cmd


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(fx_action(), max_size=6), min_size=1, max_size=4), st.booleans())
def test_fx_keeps_supply_per_asset(blocks: list[list[tuple[str, Command]]], fit: bool) -> None:
    ledger = fx_ledger(rate=Rate(41, 1))
    supply = supplies(ledger)
    for block in blocks:
        txs = []
        nonce = ledger.nonce("admin@nbc")
        for offset, (signer, cmd) in enumerate(block):
            if fit and isinstance(cmd, FxTransfer):
                # the exact price at the rate of the block's start, so most conversions apply
                rate = ledger.state().get_rate("alipayplus", cmd.source_asset, cmd.asset)
                cost = compute_source_amount(cmd.amount, rate) if rate else 1
                cmd = replace(cmd, source_amount=min(cost, MAX_AMOUNT))
            txs.append(ledger.sign(signer, cmd, nonce=nonce + offset))
        included = check_rejected_change_nothing(ledger, txs)
        ledger.apply(included)
        check_supply(ledger)
        assert supplies(ledger) == supply
