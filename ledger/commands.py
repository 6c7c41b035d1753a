"""The commands a transaction carries, and their canonical encoding `[tag, ...fields]`.

Each command checks its own fields when constructed, so a malformed command cannot
exist in memory: `MalformedTx` in code, `CodecError` when it arrives as bytes. Whether
the signer may run it and whether the state allows it is decided later, in
`ledger.permissions` and `ledger.transition`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.codec import expect_bytes, expect_int, expect_list, expect_str, fail, fits_utf8
from ledger.constants import MAX_AMOUNT, PUBLIC_KEY_SIZE
from ledger.errors import CodecError, MalformedTx
from ledger.ids import is_account_id, is_bank_code, operator_of

MAX_BANK_NAME_BYTES = 128
MAX_REFERENCE_BYTES = 64
# A whole KHQR code (the longest the field rules of `ledger.khqr` allow is about 500 bytes).
MAX_KHQR_BYTES = 1024
DEFAULT_ROLE = "customer"

_ASSET_RE = re.compile(r"[A-Z]{3,8}")
_ROLE_RE = re.compile(r"[a-z_]{1,32}")

TAG_REGISTER_BANK = 1
TAG_ADD_VALIDATOR = 2
TAG_REMOVE_VALIDATOR = 3
TAG_CREATE_ACCOUNT = 4
TAG_ISSUE = 5
TAG_REDEEM = 6
TAG_TRANSFER = 7
TAG_FREEZE = 8
TAG_UNFREEZE = 9
TAG_SET_RATE = 10
TAG_FX_TRANSFER = 11


def _check_account(value: object, what: str) -> None:
    if not isinstance(value, str) or not is_account_id(value):
        raise MalformedTx(f"{what}: bad account id {value!r}")


def _check_bank(value: object, what: str) -> None:
    if not isinstance(value, str) or not is_bank_code(value):
        raise MalformedTx(f"{what}: bad bank code {value!r}")


def _check_asset(value: object) -> None:
    if not isinstance(value, str) or _ASSET_RE.fullmatch(value) is None:
        raise MalformedTx(f"asset: bad asset code {value!r}")


def _check_amount(value: object, what: str = "amount") -> None:
    if type(value) is not int or not 0 < value <= MAX_AMOUNT:
        raise MalformedTx(f"{what}: expected an integer in [1, {MAX_AMOUNT}], got {value!r}")


def _check_key(value: object, what: str, *, optional: bool = False) -> None:
    sizes = (0, PUBLIC_KEY_SIZE) if optional else (PUBLIC_KEY_SIZE,)
    if not isinstance(value, bytes) or len(value) not in sizes:
        raise MalformedTx(f"{what}: expected a {PUBLIC_KEY_SIZE}-byte public key")


def _check_text(value: object, max_bytes: int, what: str) -> None:
    if not isinstance(value, str) or not fits_utf8(value, max_bytes):
        raise MalformedTx(f"{what}: expected a string of at most {max_bytes} UTF-8 bytes")


def is_role_name(value: object) -> bool:
    return isinstance(value, str) and _ROLE_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class RegisterBank:
    """Admit a bank; also creates its operator (settlement) account admin@<code>."""

    code: str
    name: str
    operator_key: bytes
    node_key: bytes

    def __post_init__(self) -> None:
        _check_bank(self.code, "code")
        _check_text(self.name, MAX_BANK_NAME_BYTES, "name")
        _check_key(self.operator_key, "operator_key")
        _check_key(self.node_key, "node_key")


@dataclass(frozen=True, slots=True)
class AddValidator:
    """The bank's registered node key joins the validator set (two heights later)."""

    bank: str

    def __post_init__(self) -> None:
        _check_bank(self.bank, "bank")


@dataclass(frozen=True, slots=True)
class RemoveValidator:
    """The bank's node key leaves the validator set (two heights later)."""

    bank: str

    def __post_init__(self) -> None:
        _check_bank(self.bank, "bank")


@dataclass(frozen=True, slots=True)
class CreateAccount:
    """An empty public key makes a purely custodial account: only its bank moves its funds."""

    account: str
    public_key: bytes
    role: str = DEFAULT_ROLE

    def __post_init__(self) -> None:
        _check_account(self.account, "account")
        _check_key(self.public_key, "public_key", optional=True)
        if not is_role_name(self.role):
            raise MalformedTx(f"role: bad role name {self.role!r}")


@dataclass(frozen=True, slots=True)
class Issue:
    """New money from the central bank into a bank's settlement account."""

    to: str
    asset: str
    amount: int

    def __post_init__(self) -> None:
        _check_account(self.to, "to")
        _check_asset(self.asset)
        _check_amount(self.amount)


@dataclass(frozen=True, slots=True)
class Redeem:
    """Money taken out of circulation from a bank's settlement account."""

    from_: str
    asset: str
    amount: int

    def __post_init__(self) -> None:
        _check_account(self.from_, "from")
        _check_asset(self.asset)
        _check_amount(self.amount)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A payment. `reference` is a free-form external reference (a bill number); `khqr`
    is the whole KHQR code the payment pays, which the ledger checks binds it (payee,
    currency, amount, expiry: see `ledger.references`)."""

    from_: str
    to: str
    asset: str
    amount: int
    reference: str = ""
    khqr: str = ""

    def __post_init__(self) -> None:
        _check_account(self.from_, "from")
        _check_account(self.to, "to")
        _check_asset(self.asset)
        _check_amount(self.amount)
        _check_text(self.reference, MAX_REFERENCE_BYTES, "reference")
        _check_text(self.khqr, MAX_KHQR_BYTES, "khqr")


@dataclass(frozen=True, slots=True)
class SetRate:
    """The central bank publishes the rate at which cross-border operator `operator`
    (a bank) converts `base` into `quote`: one minor unit of `base` is
    `numerator / denominator` minor units of `quote` (see `ledger.fx`)."""

    operator: str
    base: str
    quote: str
    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        _check_bank(self.operator, "operator")
        _check_asset(self.base)
        _check_asset(self.quote)
        if self.base == self.quote:
            raise MalformedTx("a rate converts between two different assets")
        _check_amount(self.numerator, "numerator")
        _check_amount(self.denominator, "denominator")


@dataclass(frozen=True, slots=True)
class FxTransfer:
    """A payment across currencies, atomically: `from_` pays `source_amount` of
    `source_asset` to the operator's settlement account admin@<operator>, which pays
    `amount` of `asset` to `to`. `source_amount` must be what the published rate asks
    (the payer signs the price it agreed to); `reference` and `khqr` as in `Transfer`
    (a code binds the payee's side: `to`, `asset`, `amount`)."""

    from_: str
    to: str
    operator: str
    source_asset: str
    source_amount: int
    asset: str
    amount: int
    reference: str = ""
    khqr: str = ""

    def __post_init__(self) -> None:
        _check_account(self.from_, "from")
        _check_account(self.to, "to")
        _check_bank(self.operator, "operator")
        _check_asset(self.source_asset)
        _check_asset(self.asset)
        if self.source_asset == self.asset:
            raise MalformedTx("an exchange pays in one asset and delivers another")
        _check_amount(self.source_amount, "source_amount")
        _check_amount(self.amount)
        _check_text(self.reference, MAX_REFERENCE_BYTES, "reference")
        _check_text(self.khqr, MAX_KHQR_BYTES, "khqr")


@dataclass(frozen=True, slots=True)
class Freeze:
    account: str

    def __post_init__(self) -> None:
        _check_account(self.account, "account")


@dataclass(frozen=True, slots=True)
class Unfreeze:
    account: str

    def __post_init__(self) -> None:
        _check_account(self.account, "account")


Command = (
    RegisterBank
    | AddValidator
    | RemoveValidator
    | CreateAccount
    | Issue
    | Redeem
    | Transfer
    | Freeze
    | Unfreeze
    | SetRate
    | FxTransfer
)


def encode_command(cmd: Command) -> list[Any]:
    """The canonical msgpack-ready form `[tag, ...fields]`."""
    match cmd:
        case Transfer():
            return [
                TAG_TRANSFER,
                cmd.from_,
                cmd.to,
                cmd.asset,
                cmd.amount,
                cmd.reference,
                cmd.khqr,
            ]
        case RegisterBank():
            return [TAG_REGISTER_BANK, cmd.code, cmd.name, cmd.operator_key, cmd.node_key]
        case AddValidator():
            return [TAG_ADD_VALIDATOR, cmd.bank]
        case RemoveValidator():
            return [TAG_REMOVE_VALIDATOR, cmd.bank]
        case CreateAccount():
            return [TAG_CREATE_ACCOUNT, cmd.account, cmd.public_key, cmd.role]
        case Issue():
            return [TAG_ISSUE, cmd.to, cmd.asset, cmd.amount]
        case Redeem():
            return [TAG_REDEEM, cmd.from_, cmd.asset, cmd.amount]
        case Freeze():
            return [TAG_FREEZE, cmd.account]
        case Unfreeze():
            return [TAG_UNFREEZE, cmd.account]
        case SetRate():
            return [TAG_SET_RATE, cmd.operator, cmd.base, cmd.quote, cmd.numerator, cmd.denominator]
        case FxTransfer():
            return [
                TAG_FX_TRANSFER,
                cmd.from_,
                cmd.to,
                cmd.operator,
                cmd.source_asset,
                cmd.source_amount,
                cmd.asset,
                cmd.amount,
                cmd.reference,
                cmd.khqr,
            ]
    raise MalformedTx(f"not a command: {type(cmd).__name__}")


def _str(obj: Any, what: str) -> str:
    return expect_str(obj, 256, what)


def _int(obj: Any, what: str) -> int:
    return expect_int(obj, 0, 2**64 - 1, what)


# Per tag: the field count after the tag and a builder that type-checks each field.
_DECODERS: dict[int, tuple[int, Callable[[list[Any]], Command]]] = {
    TAG_TRANSFER: (
        6,
        lambda f: Transfer(
            _str(f[0], "from"),
            _str(f[1], "to"),
            _str(f[2], "asset"),
            _int(f[3], "amount"),
            _str(f[4], "reference"),
            expect_str(f[5], MAX_KHQR_BYTES, "khqr"),
        ),
    ),
    TAG_REGISTER_BANK: (
        4,
        lambda f: RegisterBank(
            _str(f[0], "code"),
            _str(f[1], "name"),
            expect_bytes(f[2], None, "operator_key"),
            expect_bytes(f[3], None, "node_key"),
        ),
    ),
    TAG_ADD_VALIDATOR: (1, lambda f: AddValidator(_str(f[0], "bank"))),
    TAG_REMOVE_VALIDATOR: (1, lambda f: RemoveValidator(_str(f[0], "bank"))),
    TAG_CREATE_ACCOUNT: (
        3,
        lambda f: CreateAccount(
            _str(f[0], "account"), expect_bytes(f[1], None, "public_key"), _str(f[2], "role")
        ),
    ),
    TAG_ISSUE: (
        3,
        lambda f: Issue(_str(f[0], "to"), _str(f[1], "asset"), _int(f[2], "amount")),
    ),
    TAG_REDEEM: (
        3,
        lambda f: Redeem(_str(f[0], "from"), _str(f[1], "asset"), _int(f[2], "amount")),
    ),
    TAG_FREEZE: (1, lambda f: Freeze(_str(f[0], "account"))),
    TAG_UNFREEZE: (1, lambda f: Unfreeze(_str(f[0], "account"))),
    TAG_SET_RATE: (
        5,
        lambda f: SetRate(
            _str(f[0], "operator"),
            _str(f[1], "base"),
            _str(f[2], "quote"),
            _int(f[3], "numerator"),
            _int(f[4], "denominator"),
        ),
    ),
    TAG_FX_TRANSFER: (
        9,
        lambda f: FxTransfer(
            _str(f[0], "from"),
            _str(f[1], "to"),
            _str(f[2], "operator"),
            _str(f[3], "source_asset"),
            _int(f[4], "source_amount"),
            _str(f[5], "asset"),
            _int(f[6], "amount"),
            _str(f[7], "reference"),
            expect_str(f[8], MAX_KHQR_BYTES, "khqr"),
        ),
    ),
}


def decode_command(obj: Any) -> Command:
    """Inverse of `encode_command`; anything else raises `CodecError`."""
    items = expect_list(obj, None, "command")
    if not items:
        fail("command: empty array", "wrong_length")
    tag = expect_int(items[0], 0, 255, "command tag")
    entry = _DECODERS.get(tag)
    if entry is None:
        fail(f"command: unknown tag {tag}", "unknown_command")
    count, build = entry
    expect_list(items, count + 1, "command")
    try:
        cmd: Command = build(items[1:])
    except MalformedTx as exc:
        fail(f"command: {exc}", "invalid_field")
    return cmd


_new = object.__new__
_set = object.__setattr__


def decode_command_or_none(obj: Any) -> Command | None:
    """`decode_command` for a command it accepts, or None: the fast path of
    `SignedTx.decode`. A transfer is checked here once, field by field, with exactly the
    rules of `decode_command` and `Transfer`, and built without checking again; any other
    command goes through `decode_command`. None means the strict path must decide."""
    if type(obj) is list and len(obj) == 7 and type(obj[0]) is int and obj[0] == TAG_TRANSFER:
        _, from_, to, asset, amount, reference, khqr = obj
        if not (
            type(from_) is str
            and is_account_id(from_)
            and type(to) is str
            and is_account_id(to)
            and type(asset) is str
            and _ASSET_RE.fullmatch(asset) is not None
            and type(amount) is int
            and 0 < amount <= MAX_AMOUNT
            and type(reference) is str
            and fits_utf8(reference, MAX_REFERENCE_BYTES)
            and type(khqr) is str
            and fits_utf8(khqr, MAX_KHQR_BYTES)
        ):
            return None
        cmd = _new(Transfer)
        _set(cmd, "from_", from_)
        _set(cmd, "to", to)
        _set(cmd, "asset", asset)
        _set(cmd, "amount", amount)
        _set(cmd, "reference", reference)
        _set(cmd, "khqr", khqr)
        return cmd
    try:
        return decode_command(obj)
    except CodecError:
        return None


def get_command_accounts(cmd: Command) -> tuple[str, ...]:
    """Every account a command reads or writes, for the account-history index."""
    match cmd:
        case Transfer():
            return (cmd.from_, cmd.to)
        case CreateAccount() | Freeze() | Unfreeze():
            return (cmd.account,)
        case Issue():
            return (cmd.to,)
        case Redeem():
            return (cmd.from_,)
        case RegisterBank():
            return (operator_of(cmd.code),)
        case FxTransfer():
            return (cmd.from_, cmd.to, operator_of(cmd.operator))
        case SetRate():
            return (operator_of(cmd.operator),)
    return ()
