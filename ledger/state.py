"""Ledger state: typed records, their disk encodings, and a journaled overlay.

`State` sits on a `KeyValueReader` (the committed state). Reads are decoded once and
cached; writes stay decoded in the overlay and are encoded only by `changes()`, once
per block, for the records that differ from the store. A per-tx journal
(`begin`/`commit`/`rollback`) undoes a failed tx exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import msgpack

from ledger.codec import (
    expect_bool,
    expect_bytes,
    expect_int,
    expect_list,
    expect_list_max,
    expect_str,
    expect_version,
    fail,
    pack,
    unpack,
)
from ledger.constants import MAX_AMOUNT, PUBLIC_KEY_SIZE
from ledger.fx import Rate
from ledger.kv import KeyValueReader
from ledger.schema import (
    PENDING_VALIDATORS_PREFIX,
    make_account_key,
    make_asset_key,
    make_balance_key,
    make_bank_key,
    make_chain_params_key,
    make_fx_rate_key,
    make_paid_reference_key,
    make_pending_validators_key,
    make_role_key,
    make_supply_key,
    make_validators_key,
)

RECORD_VERSION = 1
BALANCE_BYTES = 8
DEFAULT_TX_TTL_MS = 3_600_000
DEFAULT_MAX_CLOCK_SKEW_MS = 60_000
MAX_VALIDATORS = 256
MAX_ROLE_BYTES = 32
_ACCOUNT_KEY_SIZES = (0, PUBLIC_KEY_SIZE)

# The validators of a height as the ledger stores them: (bank code, node key), in order.
# The one validator-set type with behaviour (quorum, proposer) is consensus's ValidatorSet.
ValidatorList = tuple[tuple[str, bytes], ...]
"""((bank_code, node_public_key), ...) sorted by bank code."""


def _record(data: bytes, length: int, what: str) -> list[Any]:
    items = expect_list(unpack(data), length, what)
    expect_version(items[0], RECORD_VERSION, what)
    return items


def _key(obj: Any, what: str, *, optional: bool = False) -> bytes:
    value = expect_bytes(obj, None, what)
    if len(value) != PUBLIC_KEY_SIZE and not (optional and not value):
        fail(f"{what}: expected a {PUBLIC_KEY_SIZE}-byte key", "wrong_length")
    return value


class Account(NamedTuple):
    """`nonce` is the next nonce this signer must use; an empty key cannot sign.

    Immutable like the other records, but a NamedTuple: a transfer builds two or three
    Accounts (reads and the nonce bump), and a frozen dataclass costs twice as much to build.
    """

    public_key: bytes
    role: str
    nonce: int
    frozen: bool

    def encode(self) -> bytes:
        return pack([RECORD_VERSION, self.public_key, self.role, self.nonce, self.frozen])

    def get_signing_keys(self) -> tuple[bytes, ...]:
        """The keys that may sign for this account: its one key, none for a keyless one
        (a collection so that multisig accounts fit `ledger.tx.check_signer_keys`)."""
        return (self.public_key,) if self.public_key else ()

    @staticmethod
    def decode(data: bytes) -> Account:
        """Read for every account a block touches: a fast path for well-formed records,
        which accepts only what `decode_strictly` accepts and builds the same Account."""
        try:
            version, key, role, nonce, frozen = msgpack.unpackb(data)
        except Exception:
            return Account.decode_strictly(data)
        if (
            version == RECORD_VERSION
            and type(version) is int
            and type(key) is bytes
            and len(key) in _ACCOUNT_KEY_SIZES
            and type(role) is str
            and len(role) <= MAX_ROLE_BYTES
            and role.isascii()
            and type(nonce) is int
            and 0 <= nonce <= MAX_AMOUNT
            and type(frozen) is bool
        ):
            return Account(key, role, nonce, frozen)
        return Account.decode_strictly(data)

    @staticmethod
    def decode_strictly(data: bytes) -> Account:
        items = _record(data, 5, "account")
        return Account(
            _key(items[1], "account public_key", optional=True),
            expect_str(items[2], MAX_ROLE_BYTES, "account role"),
            expect_int(items[3], 0, MAX_AMOUNT, "account nonce"),
            expect_bool(items[4], "account frozen"),
        )


@dataclass(frozen=True, slots=True)
class Bank:
    """`validator` says whether the bank is in the latest scheduled validator set."""

    code: str
    name: str
    operator_key: bytes
    node_key: bytes
    validator: bool

    def encode(self) -> bytes:
        return pack(
            [
                RECORD_VERSION,
                self.code,
                self.name,
                self.operator_key,
                self.node_key,
                self.validator,
            ]
        )

    @staticmethod
    def decode(data: bytes) -> Bank:
        items = _record(data, 6, "bank")
        return Bank(
            expect_str(items[1], 16, "bank code"),
            expect_str(items[2], 128, "bank name"),
            _key(items[3], "bank operator_key"),
            _key(items[4], "bank node_key"),
            expect_bool(items[5], "bank validator"),
        )


@dataclass(frozen=True, slots=True)
class Asset:
    code: str
    decimals: int

    def encode(self) -> bytes:
        return pack([RECORD_VERSION, self.code, self.decimals])

    @staticmethod
    def decode(data: bytes) -> Asset:
        items = _record(data, 3, "asset")
        return Asset(expect_str(items[1], 8, "asset code"), expect_int(items[2], 0, 18, "decimals"))


@dataclass(frozen=True, slots=True)
class Supply:
    """Cumulative amounts issued and redeemed; outstanding = issued - redeemed."""

    issued: int
    redeemed: int

    def encode(self) -> bytes:
        return pack([RECORD_VERSION, self.issued, self.redeemed])

    @staticmethod
    def decode(data: bytes) -> Supply:
        items = _record(data, 3, "supply")
        return Supply(
            expect_int(items[1], 0, MAX_AMOUNT, "supply issued"),
            expect_int(items[2], 0, MAX_AMOUNT, "supply redeemed"),
        )


@dataclass(frozen=True, slots=True)
class Role:
    permissions: frozenset[str]

    def encode(self) -> bytes:
        return pack([RECORD_VERSION, sorted(self.permissions)])

    @staticmethod
    def decode(data: bytes) -> Role:
        items = _record(data, 2, "role")
        perms = expect_list_max(items[1], 64, "role permissions")
        return Role(frozenset(expect_str(p, 64, "permission") for p in perms))


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Per-network values from genesis that the state transition needs."""

    tx_ttl_ms: int = DEFAULT_TX_TTL_MS
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS

    def encode(self) -> bytes:
        return pack([RECORD_VERSION, self.tx_ttl_ms, self.max_clock_skew_ms])

    @staticmethod
    def decode(data: bytes) -> ChainParams:
        items = _record(data, 3, "chain params")
        return ChainParams(
            expect_int(items[1], 0, MAX_AMOUNT, "tx_ttl_ms"),
            expect_int(items[2], 0, MAX_AMOUNT, "max_clock_skew_ms"),
        )


def encode_validator_set(validators: ValidatorList) -> bytes:
    return pack([RECORD_VERSION, [[bank, key] for bank, key in validators]])


def decode_validator_set(data: bytes) -> ValidatorList:
    items = _record(data, 2, "validator set")
    entries = expect_list_max(items[1], MAX_VALIDATORS, "validators")
    pairs = [expect_list(e, 2, "validator") for e in entries]
    return tuple(
        (expect_str(p[0], 16, "validator bank"), _key(p[1], "validator key")) for p in pairs
    )


def encode_balance(amount: int) -> bytes:
    """Fixed 8-byte big-endian: balances are the most read and written records."""
    return amount.to_bytes(BALANCE_BYTES, "big")


def decode_balance(data: bytes) -> int:
    # Exactly 8 bytes.
    if type(data) is not bytes or len(data) != BALANCE_BYTES:
        fail(f"balance: expected {BALANCE_BYTES} bytes", "wrong_length")
    amount = int.from_bytes(data, "big")
    # At most 2**63-1.
    if amount > MAX_AMOUNT:
        fail(f"balance: {amount} exceeds {MAX_AMOUNT}", "out_of_range")
    return amount


def get_validator_set(reader: KeyValueReader, height: int) -> ValidatorList:
    """The validator set that decides `height`, read from the state committed at
    `height - 1` (or `height - 2`).

    Rule: a validator change committed in block h takes effect at height h + 2. It is
    stored as a pending set under `make_pending_validators_key(h + 2)` and promoted to the
    current set when the block at h + 2 is executed. So the set for `height` is the
    latest pending set at or below `height`, else the current set.
    """
    start = make_pending_validators_key(height)
    for _key_bytes, value in reader.iterate(PENDING_VALIDATORS_PREFIX, start=start, reverse=True):
        return decode_validator_set(value)
    raw = reader.get(make_validators_key())
    return decode_validator_set(raw) if raw is not None else ()


K = TypeVar("K")
V = TypeVar("V")


class _Table(dict[K, V]):
    """One kind of record in the overlay: current values by key (a miss reads the store
    once, so a hit is a plain dict lookup) and, in `committed`, what the store holds."""

    __slots__ = ("committed", "decode", "default", "encode", "make_key", "reader")

    def __init__(
        self,
        reader: KeyValueReader,
        make_key: Callable[[K], bytes],
        decode: Callable[[bytes], V],
        encode: Callable[[V], bytes | None],
        default: V,
    ) -> None:
        super().__init__()
        self.committed: dict[K, V] = {}
        self.reader = reader
        self.make_key = make_key
        self.decode = decode
        self.encode = encode
        self.default = default

    def __missing__(self, key: K) -> V:
        raw = self.reader.get(self.make_key(key))
        value = self.default if raw is None else self.decode(raw)
        self.committed[key] = self[key] = value
        return value

    def set(self, key: K, value: V, journal: list[Any] | None) -> None:
        """Reading the old value first (a store read on a blind write) keeps `committed`
        complete, so `changes` is exactly the difference from the store."""
        old = self[key]
        if journal is not None:
            journal.append((self, key, old))
        self[key] = value

    def changes(self) -> dict[bytes, bytes | None]:
        make_key, encode, committed = self.make_key, self.encode, self.committed
        return {
            make_key(key): encode(value) for key, value in self.items() if value != committed[key]
        }


def _or_none(encode: Callable[[Any], bytes]) -> Callable[[Any], bytes | None]:
    """Records encode to bytes; an absent record (None) is a delete."""
    return lambda value: None if value is None else encode(value)


def _make_balance_key(key: tuple[str, str]) -> bytes:
    return make_balance_key(*key)


PAID_MARKER = b"\x01"


def _decode_paid(data: bytes) -> bool:
    # A paid reference is stored as the one-byte marker.
    if data != PAID_MARKER:
        fail("paid reference: expected the marker 01", "malformed")
    return True


def _encode_paid(paid: bool) -> bytes | None:
    return PAID_MARKER if paid else None


def _make_rate_key(key: tuple[str, str, str]) -> bytes:
    return make_fx_rate_key(*key)


def _encode_balance_or_delete(amount: int) -> bytes | None:
    """A zero balance is not stored."""
    return encode_balance(amount) if amount else None


class State:
    """A journaled, caching overlay on committed state. Not thread-safe; one per block."""

    def __init__(self, reader: KeyValueReader) -> None:
        self._journal: list[Any] | None = None
        self._accounts: _Table[str, Account | None] = _Table(
            reader, make_account_key, Account.decode, _or_none(Account.encode), None
        )
        self._balances: _Table[tuple[str, str], int] = _Table(
            reader,
            _make_balance_key,
            decode_balance,
            _encode_balance_or_delete,
            0,
        )
        self._banks: _Table[str, Bank | None] = _Table(
            reader, make_bank_key, Bank.decode, _or_none(Bank.encode), None
        )
        self._assets: _Table[str, Asset | None] = _Table(
            reader, make_asset_key, Asset.decode, _or_none(Asset.encode), None
        )
        self._supplies: _Table[str, Supply] = _Table(
            reader, make_supply_key, Supply.decode, Supply.encode, Supply(0, 0)
        )
        self._roles: _Table[str, Role | None] = _Table(
            reader, make_role_key, Role.decode, _or_none(Role.encode), None
        )
        self._validators: _Table[int | None, ValidatorList | None] = _Table(
            reader,
            lambda h: make_validators_key() if h is None else make_pending_validators_key(h),
            decode_validator_set,
            _or_none(encode_validator_set),
            None,
        )
        self._params: _Table[None, ChainParams | None] = _Table(
            reader,
            lambda _: make_chain_params_key(),
            ChainParams.decode,
            _or_none(ChainParams.encode),
            None,
        )
        self._paid: _Table[str, bool] = _Table(
            reader, make_paid_reference_key, _decode_paid, _encode_paid, False
        )
        self._rates: _Table[tuple[str, str, str], Rate | None] = _Table(
            reader, _make_rate_key, Rate.decode, _or_none(Rate.encode), None
        )
        self._tables: tuple[_Table[Any, Any], ...] = (
            self._accounts,
            self._balances,
            self._banks,
            self._assets,
            self._supplies,
            self._roles,
            self._validators,
            self._params,
            self._paid,
            self._rates,
        )

    # Reads.
    def get_account(self, account: str) -> Account | None:
        return self._accounts[account]

    def get_balance(self, account: str, asset: str) -> int:
        return self._balances[account, asset]

    def get_bank(self, code: str) -> Bank | None:
        return self._banks[code]

    def get_asset(self, code: str) -> Asset | None:
        return self._assets[code]

    def get_supply(self, asset: str) -> Supply:
        return self._supplies[asset]

    def get_role(self, name: str) -> Role | None:
        return self._roles[name]

    def get_validators(self) -> ValidatorList:
        """The current validator set (the one deciding the block being executed)."""
        return self._validators[None] or ()

    def get_pending_validators(self, height: int) -> ValidatorList | None:
        return self._validators[height]

    def get_params(self) -> ChainParams:
        return self._params[None] or ChainParams()

    def is_reference_paid(self, reference: str) -> bool:
        return self._paid[reference]

    def get_rate(self, operator: str, base: str, quote: str) -> Rate | None:
        return self._rates[operator, base, quote]

    # Writes (journaled between begin and commit/rollback).
    def set_account(self, account: str, record: Account) -> None:
        self._accounts.set(account, record, self._journal)

    def set_balance(self, account: str, asset: str, amount: int) -> None:
        self._balances.set((account, asset), amount, self._journal)

    def set_bank(self, bank: Bank) -> None:
        self._banks.set(bank.code, bank, self._journal)

    def set_asset(self, asset: Asset) -> None:
        self._assets.set(asset.code, asset, self._journal)

    def set_supply(self, asset: str, supply: Supply) -> None:
        self._supplies.set(asset, supply, self._journal)

    def set_role(self, name: str, role: Role) -> None:
        self._roles.set(name, role, self._journal)

    def set_validators(self, validators: ValidatorList) -> None:
        self._validators.set(None, validators, self._journal)

    def set_pending_validators(self, height: int, validators: ValidatorList | None) -> None:
        """Schedule the set that takes effect at `height`; None removes the schedule."""
        self._validators.set(height, validators, self._journal)

    def set_params(self, params: ChainParams) -> None:
        self._params.set(None, params, self._journal)

    def set_reference_paid(self, reference: str) -> None:
        self._paid.set(reference, True, self._journal)

    def set_rate(self, operator: str, base: str, quote: str, rate: Rate) -> None:
        self._rates.set((operator, base, quote), rate, self._journal)

    # Journal.
    def begin(self) -> None:
        """Start recording undo entries for one tx."""
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        """Undo every write since `begin`, leaving the overlay exactly as it was."""
        journal = self._journal or []
        for table, key, old in reversed(journal):
            table[key] = old
        self._journal = None

    def changes(self) -> dict[bytes, bytes | None]:
        """Every state key whose record now differs from the store -> its new encoding
        (None: deleted). A write that restores the stored value is no change."""
        out: dict[bytes, bytes | None] = {}
        for table in self._tables:
            out |= table.changes()
        return out
