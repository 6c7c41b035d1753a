"""Exchange rates for cross-border payments: the rate record and its exact integer maths.

The central bank publishes, per cross-border operator (a registered bank such as
`alipayplus`), the rate at which that operator converts one asset into another
(`SetRate`). A rate is an exact ratio of minor units: one minor unit of `base` converts
to `numerator / denominator` minor units of `quote`. No float is ever involved.

Rounding: to deliver `amount` of the quote asset, the payer pays
`ceil(amount * denominator / numerator)` of the base asset, so the conversion never
gives away value: the operator is paid at least the published rate, by less than one
minor unit of the base asset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from ledger.codec import expect_int, expect_list, expect_version, pack, unpack
from ledger.constants import MAX_AMOUNT
from ledger.errors import InvalidAmount
from ledger.kv import KeyValueReader
from ledger.schema import make_fx_rate_prefix

RATE_VERSION: Final = 1
RATE_DISPLAY_DECIMALS: Final = 6
_RATE_TEXT: Final = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,18}))?")


@dataclass(frozen=True, slots=True)
class Rate:
    """One minor unit of the base asset is worth `numerator / denominator` of the quote."""

    numerator: int
    denominator: int

    def encode(self) -> bytes:
        return pack([RATE_VERSION, self.numerator, self.denominator])

    @staticmethod
    def decode(data: bytes) -> Rate:
        items = expect_list(unpack(data), 3, "rate")
        expect_version(items[0], RATE_VERSION, "rate")
        return Rate(
            expect_int(items[1], 1, MAX_AMOUNT, "rate numerator"),
            expect_int(items[2], 1, MAX_AMOUNT, "rate denominator"),
        )


def compute_source_amount(amount: int, rate: Rate) -> int:
    """What the payer pays in the base asset for `amount` of the quote: rounded up."""
    return -(-amount * rate.denominator // rate.numerator)


def parse_rate(text: str, base_decimals: int, quote_decimals: int) -> Rate:
    """ "1 BASE = TEXT QUOTE" in whole units (e.g. "4100" riel per dollar) -> the exact
    ratio of minor units, reduced."""
    match = _RATE_TEXT.fullmatch(text) if isinstance(text, str) else None
    # a positive decimal number
    if match is None or not any(ch in "123456789" for ch in text):
        raise InvalidAmount(f"bad rate {text!r}: expected a positive decimal like 4100 or 0.25")
    fraction = match.group(2) or ""
    numerator = int(match.group(1) + fraction) * 10**quote_decimals
    denominator = 10 ** len(fraction) * 10**base_decimals
    divisor = math.gcd(numerator, denominator)
    rate = Rate(numerator // divisor, denominator // divisor)
    # both terms fit the ledger's integers
    if max(rate.numerator, rate.denominator) > MAX_AMOUNT:
        raise InvalidAmount(f"bad rate {text!r}: too large or too precise")
    return rate


def format_rate(rate: Rate, base_decimals: int, quote_decimals: int) -> str:
    """Whole quote units per whole base unit, for display only: at most 6 decimals,
    rounded half up (the exact value is the ratio itself)."""
    scale = 10**RATE_DISPLAY_DECIMALS
    top = rate.numerator * 10**base_decimals * scale
    bottom = rate.denominator * 10**quote_decimals
    scaled = (2 * top + bottom) // (2 * bottom)
    whole, fraction = divmod(scaled, scale)
    digits = f"{fraction:0{RATE_DISPLAY_DECIMALS}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


@dataclass(frozen=True, slots=True)
class PublishedRate:
    operator: str
    base: str
    quote: str
    rate: Rate


def get_published_rates(reader: KeyValueReader, operator: str = "") -> list[PublishedRate]:
    """Every rate in committed state (or one operator's), sorted by operator and pair."""
    prefix = make_fx_rate_prefix()
    found = []
    for key, raw in reader.iterate(make_fx_rate_prefix(operator)):
        bank, base, quote = key[len(prefix) :].decode().split("/")
        found.append(PublishedRate(bank, base, quote, Rate.decode(raw)))
    return found
