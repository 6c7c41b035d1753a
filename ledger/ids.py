"""Domain value types: account ids, bank codes, asset codes, heights and amounts.

Amounts are integers of minor units everywhere inside the system; decimal strings exist
only at the edges and convert exactly through `parse_amount` / `format_amount`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import NewType

from ledger.constants import CENTRAL_BANK_CODE, MAX_AMOUNT, OPERATOR_NAME
from ledger.errors import InvalidAmount, InvalidId

AccountId = NewType("AccountId", str)
BankCode = NewType("BankCode", str)
AssetCode = NewType("AssetCode", str)
Height = NewType("Height", int)
Amount = int  # integer minor units; never a float

_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_BANK_RE = re.compile(r"[a-z0-9]{2,16}")
_ASSET_RE = re.compile(r"[A-Z]{3,8}")
_AMOUNT_RE = re.compile(r"(\d+)(?:\.(\d+))?")


def is_bank_code(text: str) -> bool:
    return isinstance(text, str) and _BANK_RE.fullmatch(text) is not None


_ACCOUNT_RE = re.compile(r"[a-z0-9_]{1,32}@[a-z0-9]{2,16}")


def is_account_id(text: str) -> bool:
    """name@bank: name `_NAME_RE`, bank `_BANK_RE` (neither holds "@", so one "@")."""
    return isinstance(text, str) and _ACCOUNT_RE.fullmatch(text) is not None


def parse_account_id(text: str) -> AccountId:
    """An account id a person typed: any case (`Dara@Wing` is `dara@wing`, as asset codes
    are any case too), stored and shown lowercase."""
    normalized = text.strip().lower()
    if not is_account_id(normalized):
        raise InvalidId(
            f"bad account id {text!r}: expected name@bank with name [a-z0-9_]{{1,32}} "
            "and bank [a-z0-9]{2,16} (any case)"
        )
    return AccountId(normalized)


def parse_bank_code(text: str) -> BankCode:
    """A bank code a person typed, any case (stored lowercase)."""
    normalized = text.strip().lower()
    if not is_bank_code(normalized):
        raise InvalidId(f"bad bank code {text!r}: expected [a-z0-9]{{2,16}} (any case)")
    return BankCode(normalized)


def format_time_ms(ms: int) -> str:
    """Milliseconds since the epoch as a UTC time for messages (`2026-12-01 12:00:05 UTC`);
    pure, so the ledger may say when something expired without reading a clock."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_asset_code(text: str) -> AssetCode:
    if not isinstance(text, str) or _ASSET_RE.fullmatch(text) is None:
        raise InvalidId(f"bad asset code {text!r}: expected 3-8 capital letters")
    return AssetCode(text)


def account_name(account: str) -> str:
    return account.split("@", 1)[0]


def bank_of(account: str) -> BankCode:
    return BankCode(account.rsplit("@", 1)[1])


def operator_of(bank: str) -> AccountId:
    """The operator (settlement) account of a bank: admin@<code>."""
    return AccountId(f"{OPERATOR_NAME}@{bank}")


def central_bank_operator() -> AccountId:
    return operator_of(CENTRAL_BANK_CODE)


def is_operator(account: str) -> bool:
    return account_name(account) == OPERATOR_NAME


def parse_amount(text: str, decimals: int) -> Amount:
    """Exact decimal string -> minor units. Rejects negatives, junk, excess decimals, overflow."""
    match = _AMOUNT_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidAmount(f"bad amount {text!r}: expected a non-negative decimal like 12.50")
    whole: str = match.group(1)
    frac: str = match.group(2) or ""
    if len(frac) > decimals:
        raise InvalidAmount(
            f"bad amount {text!r}: at most {decimals} decimal place(s) for this asset"
        )
    if len(whole) > 20:
        raise InvalidAmount(f"bad amount {text!r}: too large", "amount_overflow")
    value: int = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if value > MAX_AMOUNT:
        raise InvalidAmount(f"bad amount {text!r}: exceeds the maximum", "amount_overflow")
    return value


def format_amount(value: Amount, decimals: int) -> str:
    """Minor units -> exact decimal string with exactly `decimals` places ("12.50", "100")."""
    if type(value) is not int or value < 0:
        raise InvalidAmount(f"bad amount {value!r}: expected a non-negative integer")
    if decimals == 0:
        return str(value)
    whole, frac = divmod(value, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


def format_amount_grouped(value: Amount, decimals: int) -> str:
    """`format_amount` for people: thousands separated ("1,234,567.50")."""
    text = format_amount(value, decimals)
    whole, dot, frac = text.partition(".")
    return f"{int(whole):,}{dot}{frac}"
