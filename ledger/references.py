"""Payment references: what ties a transfer to a KHQR code or a bill, and which pay once.

A transfer (or an FX transfer) may carry two things:
- `khqr`: the whole KHQR code it pays. The code *binds* the payment: at execution the
  ledger reads the code (field rules, CRC) and requires that it pays the transfer's
  receiver, in the transfer's asset, the transfer's amount (a static code leaves the
  amount to the payer), and that it has not expired at the block's time. Anything else
  is `reference_mismatch` and nothing moves. A *dynamic* code (one with an amount) pays
  once: the first payment records the code's md5 and a later one is `already_paid`.
  Nodes index the payment under the code's md5, how Bakong's `check_transaction_by_md5`
  finds it; since the code is in the payment, only a payment the code allows is found.
- `reference`: free text such as a bill number or an external reference, indexed under
  itself, never unique. A reference shaped like an md5 (32 hex digits, also followed by
  `:...`) is refused (`reference_mismatch`): an md5 is claimed only with its code.

Why the code and not its md5: an md5 alone says nothing about the code, so any payer
could *squat* a merchant's dynamic code (a 1-riel transfer carrying its md5 would be
"its payment", and the real one then `already_paid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.commands import Command, FxTransfer, Transfer
from ledger.errors import ReferenceMismatch
from ledger.ids import format_amount_grouped, format_time_ms
from ledger.khqr import CURRENCY_DECIMALS, KHQR, KHQRError, decode_khqr, is_expired, khqr_md5

MD5_HEX_DIGITS: Final = 32
_MD5_SEPARATOR: Final = ":"
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def is_khqr_md5(text: str) -> bool:
    """32 lowercase hex digits: the md5 of a KHQR code as Bakong writes it."""
    return len(text) == MD5_HEX_DIGITS and frozenset("0123456789abcdef").issuperset(text)


def is_md5_shaped(reference: str) -> bool:
    """An md5 in either case, alone or followed by `:`: what a free-form reference may not
    be (it would pose as the payment of a code it does not carry)."""
    head, rest = reference[:MD5_HEX_DIGITS], reference[MD5_HEX_DIGITS:]
    return (
        len(head) == MD5_HEX_DIGITS
        and _HEX.issuperset(head)
        and (not rest or rest.startswith(_MD5_SEPARATOR))
    )


@dataclass(frozen=True, slots=True)
class PaidCode:
    """The KHQR code a payment carries, read."""

    code: KHQR
    md5: str

    @property
    def is_single_use(self) -> bool:
        return self.code.is_dynamic


def get_payment_fields(cmd: Command) -> tuple[str, str, int, str, str] | None:
    """(to, asset, amount, reference, khqr) of a payment command, else None."""
    if type(cmd) is Transfer:
        return cmd.to, cmd.asset, cmd.amount, cmd.reference, cmd.khqr
    if type(cmd) is FxTransfer:
        return cmd.to, cmd.asset, cmd.amount, cmd.reference, cmd.khqr
    return None


def read_code(text: str) -> PaidCode:
    """The code a payment carries; `reference_mismatch` if it does not read."""
    try:
        code = decode_khqr(text)
    except KHQRError as exc:
        raise ReferenceMismatch(f"the KHQR code does not read: {exc.code}: {exc.message}") from exc
    return PaidCode(code, khqr_md5(text))


def check_payment_binding(
    to: str, asset: str, amount: int, reference: str, khqr: str, time_ms: int | None
) -> PaidCode | None:
    """The stateless rules of a payment's references (see the module docstring), at
    `time_ms` (a block's time, or a node's clock at admission; None skips expiry).
    Returns the code read, or None when the payment carries none."""
    # A free-form reference never poses as an md5.
    if reference and is_md5_shaped(reference):
        raise ReferenceMismatch(
            f"reference {reference!r} looks like a KHQR md5: a KHQR payment carries its code"
        )
    if not khqr:
        return None
    paid = read_code(khqr)
    code = paid.code
    # The code pays this receiver.
    if code.account_id != to:
        raise ReferenceMismatch(f"the code pays {code.account_id}, not {to}")
    # In this currency.
    if code.currency != asset:
        raise ReferenceMismatch(f"the code asks for {code.currency}, the payment is {asset}")
    # A dynamic code fixes the amount (a static one leaves it to the payer).
    if code.amount is not None and code.amount != amount:
        decimals = CURRENCY_DECIMALS.get(asset, 0)
        raise ReferenceMismatch(
            f"the code asks for {format_amount_grouped(code.amount, decimals)} {asset}, "
            f"the payment is {format_amount_grouped(amount, decimals)} {asset}"
        )
    # The code has not expired.
    if time_ms is not None and is_expired(code, time_ms):
        raise ReferenceMismatch(
            f"the code expired at {format_time_ms(code.expires_ms or 0)}, "
            f"before {format_time_ms(time_ms)}"
        )
    return paid


def check_command_binding(cmd: Command, time_ms: int | None) -> PaidCode | None:
    fields = get_payment_fields(cmd)
    if fields is None:
        return None
    return check_payment_binding(*fields, time_ms)


def get_lookup_keys(cmd: Command) -> tuple[str, ...]:
    """The keys a payment is indexed under: its code's md5 and its free-form reference."""
    fields = get_payment_fields(cmd)
    if fields is None:
        return ()
    reference, khqr = fields[3], fields[4]
    keys = (khqr_md5(khqr),) if khqr else ()
    return (*keys, reference) if reference else keys


def get_command_reference(cmd: Command) -> str:
    """The free-form payment reference a command carries ("" for none)."""
    fields = get_payment_fields(cmd)
    return fields[3] if fields is not None else ""


def get_command_khqr(cmd: Command) -> str:
    """The KHQR code a command pays ("" for none)."""
    fields = get_payment_fields(cmd)
    return fields[4] if fields is not None else ""
