"""Commands in words for the web explorer: "sokha@aba paid 12.50 USD to dara@wing".

A description is a list of parts, each plain text or an account id, so that a page can
link the accounts and the live feed can send the same words as JSON; nothing here is
HTML. Amounts are exact, grouped for people ("4,000,000 KHR").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from ledger.commands import (
    AddValidator,
    Command,
    CreateAccount,
    Freeze,
    FxTransfer,
    Issue,
    Redeem,
    RegisterBank,
    RemoveValidator,
    SetRate,
    Transfer,
    Unfreeze,
)
from ledger.fx import Rate, format_rate
from ledger.ids import format_amount_grouped

Kind = Literal["text", "account"]
Part = tuple[Kind, str]
Words = list[Part]

MAX_REFERENCE_SHOWN: Final = 64


def text(value: str) -> Part:
    return ("text", value)


def account(value: str) -> Part:
    return ("account", value)


def amount_words(amount: int, asset: str, decimals: Mapping[str, int]) -> str:
    """12.50 USD, 4,000,000 KHR."""
    return f"{format_amount_grouped(amount, decimals.get(asset, 0))} {asset}"


def describe(cmd: Command, signer: str, decimals: Mapping[str, int]) -> Words:
    """One command in words, its subject the tx's signer unless the command names one."""
    if isinstance(cmd, Transfer):
        return _payment(cmd.from_, cmd.to, amount_words(cmd.amount, cmd.asset, decimals), cmd)
    if isinstance(cmd, FxTransfer):
        paid = amount_words(cmd.source_amount, cmd.source_asset, decimals)
        got = amount_words(cmd.amount, cmd.asset, decimals)
        words = _payment(cmd.from_, cmd.to, f"{paid} as {got}", cmd)
        return [*words, text(f" through {cmd.operator}")]
    if isinstance(cmd, Issue):
        amount = amount_words(cmd.amount, cmd.asset, decimals)
        return [account(signer), text(f" issued {amount} to "), account(cmd.to)]
    if isinstance(cmd, Redeem):
        amount = amount_words(cmd.amount, cmd.asset, decimals)
        return [account(signer), text(f" redeemed {amount} from "), account(cmd.from_)]
    return _admin(cmd, signer, decimals)


def _payment(source: str, target: str, what: str, cmd: Transfer | FxTransfer) -> Words:
    words: Words = [account(source), text(f" paid {what} to "), account(target)]
    if cmd.khqr:
        words.append(text(" with a KHQR code"))
    if cmd.reference:
        words.append(text(f" (reference {cmd.reference[:MAX_REFERENCE_SHOWN]})"))
    return words


def _admin(cmd: Command, signer: str, decimals: Mapping[str, int]) -> Words:
    who = account(signer)
    if isinstance(cmd, CreateAccount):
        keyed = "with its own key" if cmd.public_key else "custodial: its bank signs"
        return [who, text(" opened "), account(cmd.account), text(f" ({cmd.role}, {keyed})")]
    if isinstance(cmd, Freeze):
        return [who, text(" froze "), account(cmd.account)]
    if isinstance(cmd, Unfreeze):
        return [who, text(" unfroze "), account(cmd.account)]
    if isinstance(cmd, RegisterBank):
        return [who, text(f" registered the bank {cmd.code} ({cmd.name})")]
    if isinstance(cmd, AddValidator):
        return [who, text(f" made {cmd.bank} a validator")]
    if isinstance(cmd, RemoveValidator):
        return [who, text(f" removed {cmd.bank} from the validators")]
    if isinstance(cmd, SetRate):
        return [who, text(f" set {cmd.operator}'s rate: {_rate_words(cmd, decimals)}")]
    return [who, text(f" ran {type(cmd).__name__}")]


def _rate_words(cmd: SetRate, decimals: Mapping[str, int]) -> str:
    """1 USD = 4,100 KHR (for people; the ledger keeps the exact ratio of minor units)."""
    rate = Rate(cmd.numerator, cmd.denominator)
    shown = format_rate(rate, decimals.get(cmd.base, 0), decimals.get(cmd.quote, 0))
    return f"1 {cmd.base} = {shown} {cmd.quote}"


def words_text(words: Words) -> str:
    """The words as one plain line."""
    return "".join(value for _, value in words)
