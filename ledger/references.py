"""Payment references: what a transfer's `reference` means, and which ones pay only once.

A reference ties a payment to something outside the ledger: the md5 of the KHQR code it
pays (how Bakong's `check_transaction_by_md5` finds a payment) or a bill number.

- `<md5>` (exactly 32 lowercase hex digits): the payment of a *dynamic* KHQR code (one
  with an amount). It pays once: the first transfer records the md5 in state and any
  later transfer carrying it is rejected `already_paid`, on every node alike.
- `<md5>:<suffix>`: a payment of a *static* KHQR code (no amount), which many payers
  may pay many times; `bakong pay` writes `<md5>:static`. Never unique.
- anything else: a free-form reference such as a bill number. Never unique.

Nodes index every payment under its lookup key (the md5 for both KHQR forms, else the
reference itself). The ledger never sees the code, only its md5: it trusts the payer's
wallet to mark a code static only when it carries no amount.
"""

from __future__ import annotations

from typing import Final

from ledger.commands import Command, FxTransfer, Transfer

MD5_HEX_DIGITS: Final = 32
STATIC_SEPARATOR: Final = ":"
STATIC_SUFFIX: Final = "static"
_HEX: Final = frozenset("0123456789abcdef")


def is_khqr_md5(text: str) -> bool:
    """32 lowercase hex digits: the md5 of a KHQR code as Bakong writes it."""
    return len(text) == MD5_HEX_DIGITS and _HEX.issuperset(text)


def is_single_use_reference(reference: str) -> bool:
    """A dynamic KHQR's md5, which one transfer may carry, once."""
    return is_khqr_md5(reference)


def make_static_reference(md5: str, suffix: str = STATIC_SUFFIX) -> str:
    """The reference of one payment of a static KHQR code: filed under the md5, not unique."""
    return f"{md5}{STATIC_SEPARATOR}{suffix}"


def get_lookup_key(reference: str) -> str:
    """The key a payment is filed under: the md5 of a KHQR reference, else the reference."""
    head = reference[:MD5_HEX_DIGITS]
    rest = reference[MD5_HEX_DIGITS:]
    if is_khqr_md5(head) and (not rest or rest.startswith(STATIC_SEPARATOR)):
        return head
    return reference


def get_command_reference(cmd: Command) -> str:
    """The payment reference a command carries ("" for none)."""
    if type(cmd) is Transfer or type(cmd) is FxTransfer:
        return cmd.reference
    return ""
