"""Transactions: a body of commands from one signer, and the signatures over its hash.

Wire form of a signed tx: `[version, body_bytes, [[public_key, signature], ...]]`, where
`body_bytes` is the canonical encoding of `[version, chain_id, signer, nonce, created_at,
[command, ...], memo]`. Carrying the body as bytes lets the hash (`sha256(body_bytes)`)
be computed once, straight from what arrived, without re-encoding.

Two hashes, for two purposes:
- `hash` = sha256(body_bytes), the tx id: what signers sign, what clients look up, what
  replay protection, the tx index and the mempool are keyed by. It does NOT cover the
  signatures, so it never names a verdict about them.
- `wire_hash` = sha256(encode()), the whole signed tx (body, every key, every signature):
  what a block's tx root commits to and what the cache of verified signatures is keyed by.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.codec import (
    expect_bytes,
    expect_int,
    expect_list,
    expect_list_max,
    expect_str,
    expect_version,
    fail,
    fits_utf8,
    pack,
    unpack,
    unpack_or_none,
)
from ledger.commands import (
    Command,
    decode_command,
    decode_command_or_none,
    encode_command,
)
from ledger.constants import (
    DOMAIN_TX,
    MAX_COMMANDS_PER_TX,
    MAX_MEMO_BYTES,
    MAX_TX_BYTES,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    TX_VERSION,
)
from ledger.crypto import PrivateKey, sha256, signing_root_of_hash, verify_root
from ledger.errors import BadSignature, CodecError, MalformedTx, WrongChain
from ledger.ids import is_account_id

MAX_CHAIN_ID_BYTES = 64
MAX_SIGNATURES = 8
MAX_TIMESTAMP = 2**63 - 1
MAX_NONCE = 2**63 - 1


def _check_body(body: TxBody) -> None:
    # Only the one body version this code understands.
    if body.version != TX_VERSION:
        raise MalformedTx(f"version: unknown tx version {body.version!r}")
    # A chain id is short non-empty text.
    if not isinstance(body.chain_id, str) or not 0 < len(body.chain_id) <= MAX_CHAIN_ID_BYTES:
        raise MalformedTx("chain_id: expected 1 to 64 characters")
    # The signer is an account id.
    if not isinstance(body.signer, str) or not is_account_id(body.signer):
        raise MalformedTx(f"signer: bad account id {body.signer!r}")
    # Nonce and creation time are non-negative 63-bit integers.
    for name, value, limit in (
        ("nonce", body.nonce, MAX_NONCE),
        ("created_at", body.created_at, MAX_TIMESTAMP),
    ):
        if type(value) is not int or not 0 <= value <= limit:
            raise MalformedTx(f"{name}: expected an integer in [0, 2**63-1]")
    # Between one and MAX_COMMANDS_PER_TX commands, as a tuple.
    if not isinstance(body.commands, tuple) or not 0 < len(body.commands) <= MAX_COMMANDS_PER_TX:
        raise MalformedTx(f"commands: expected 1 to {MAX_COMMANDS_PER_TX} commands")
    # The memo fits in MAX_MEMO_BYTES of UTF-8.
    if not isinstance(body.memo, str) or not fits_utf8(body.memo, MAX_MEMO_BYTES):
        raise MalformedTx(f"memo: longer than {MAX_MEMO_BYTES} UTF-8 bytes")


@dataclass(frozen=True, slots=True)
class TxBody:
    """What the signer signs. Construction checks every field (`MalformedTx`)."""

    version: int
    chain_id: str
    signer: str
    nonce: int
    created_at: int
    commands: tuple[Command, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        _check_body(self)

    def encode(self) -> bytes:
        return pack(
            [
                self.version,
                self.chain_id,
                self.signer,
                self.nonce,
                self.created_at,
                [encode_command(cmd) for cmd in self.commands],
                self.memo,
            ]
        )


@dataclass(frozen=True, slots=True)
class TxSignature:
    public_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_SIZE:
            raise MalformedTx(f"signature: public key must be {PUBLIC_KEY_SIZE} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise MalformedTx(f"signature: signature must be {SIGNATURE_SIZE} bytes")


def _encode_signed(body_bytes: bytes, signatures: tuple[TxSignature, ...]) -> bytes:
    return pack([TX_VERSION, body_bytes, [[s.public_key, s.signature] for s in signatures]])


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A body and its signatures. `hash` (the tx id, body only) and `wire_hash` (the whole
    signed tx) are computed once at construction (or from the decoded bytes), never again."""

    body: TxBody
    signatures: tuple[TxSignature, ...]
    body_bytes: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)
    wire_hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.body, TxBody):
            raise MalformedTx("body: expected a TxBody")
        if not isinstance(self.signatures, tuple) or len(self.signatures) > MAX_SIGNATURES:
            raise MalformedTx(f"signatures: expected a tuple of at most {MAX_SIGNATURES}")
        if not all(isinstance(s, TxSignature) for s in self.signatures):
            raise MalformedTx("signatures: expected TxSignature items")
        body_bytes = self.body.encode()
        object.__setattr__(self, "body_bytes", body_bytes)
        object.__setattr__(self, "hash", sha256(body_bytes))
        object.__setattr__(self, "wire_hash", sha256(_encode_signed(body_bytes, self.signatures)))

    def encode(self) -> bytes:
        return _encode_signed(self.body_bytes, self.signatures)

    @staticmethod
    def decode(data: bytes) -> SignedTx:
        """Strict inverse of `encode`: anything but a canonical signed tx is a `CodecError`.

        Every node decodes every tx, so this is on the hot path: a fast path takes what
        it can vouch for, and everything else (every refusal among it) goes to the strict
        path, which is the rule and gives the error its code."""
        return _decode_fast(data) or _decode_strict(data)


def _decode_strict(data: bytes) -> SignedTx:
    """The decoder's rule, check by check, each refusal with its code."""
    outer = expect_list(unpack(data, MAX_TX_BYTES), 3, "tx")
    expect_version(outer[0], TX_VERSION, "tx")
    body_bytes = expect_bytes(outer[1], None, "tx body")
    raw_sigs = expect_list_max(outer[2], MAX_SIGNATURES, "tx signatures")
    body_obj = unpack(body_bytes, MAX_TX_BYTES)
    try:
        body = _body_from_obj(body_obj)
        signatures = tuple(_signature_from_obj(s) for s in raw_sigs)
    except MalformedTx as exc:
        fail(f"tx: {exc}", "invalid_field")
    if pack(body_obj) != body_bytes or pack(outer) != data:
        fail("tx: not the canonical encoding", "non_canonical")
    # `data` is the canonical encoding: its hash is the wire hash.
    return _assemble(body, signatures, body_bytes, data)


_new = object.__new__
_set = object.__setattr__


def _decode_fast(data: bytes) -> SignedTx | None:
    """`_decode_strict(data)` when that accepts `data`; None when it might refuse it.
    Every field is checked once, with the same rules as the strict path and the
    constructors (`TxBody`, `TxSignature`), and the containers are built without
    checking again. The canonical-encoding check is the same."""
    if type(data) is not bytes or not 0 < len(data) <= MAX_TX_BYTES:
        return None
    outer = unpack_or_none(data)
    if type(outer) is not list or len(outer) != 3:
        return None
    version, body_bytes, raw_sigs = outer
    if (
        type(version) is not int
        or version != TX_VERSION
        or type(body_bytes) is not bytes
        or type(raw_sigs) is not list
        or len(raw_sigs) > MAX_SIGNATURES
    ):
        return None
    items = unpack_or_none(body_bytes)
    if type(items) is not list or len(items) != 7:
        return None
    body_version, chain_id, signer, nonce, created_at, raw_commands, memo = items
    if not (
        type(body_version) is int
        and body_version == TX_VERSION
        and type(chain_id) is str
        and len(chain_id) > 0
        and fits_utf8(chain_id, MAX_CHAIN_ID_BYTES)
        and type(signer) is str
        and is_account_id(signer)
        and type(nonce) is int
        and 0 <= nonce <= MAX_NONCE
        and type(created_at) is int
        and 0 <= created_at <= MAX_TIMESTAMP
        and type(raw_commands) is list
        and 0 < len(raw_commands) <= MAX_COMMANDS_PER_TX
        and type(memo) is str
        and fits_utf8(memo, MAX_MEMO_BYTES)
    ):
        return None
    commands = []
    for raw in raw_commands:
        command = decode_command_or_none(raw)
        if command is None:
            return None
        commands.append(command)
    signatures = []
    for raw in raw_sigs:
        if not (
            type(raw) is list
            and len(raw) == 2
            and type(raw[0]) is bytes
            and len(raw[0]) == PUBLIC_KEY_SIZE
            and type(raw[1]) is bytes
            and len(raw[1]) == SIGNATURE_SIZE
        ):
            return None
        signature = _new(TxSignature)
        _set(signature, "public_key", raw[0])
        _set(signature, "signature", raw[1])
        signatures.append(signature)
    if pack(items) != body_bytes or pack(outer) != data:
        return None
    body = _new(TxBody)
    _set(body, "version", body_version)
    _set(body, "chain_id", chain_id)
    _set(body, "signer", signer)
    _set(body, "nonce", nonce)
    _set(body, "created_at", created_at)
    _set(body, "commands", tuple(commands))
    _set(body, "memo", memo)
    return _assemble(body, tuple(signatures), body_bytes, data)


def peek_tx_hash(data: bytes) -> bytes | None:
    """The tx id (body hash) an encoded signed tx names, read from its outer list alone,
    or None when `data` is not shaped like one. No check of the tx: only to find a copy
    of the same bytes already decoded (Block.decode's `held`), whose bytes the caller
    compares."""
    try:
        outer = unpack(data, MAX_TX_BYTES)
    except CodecError:
        return None
    if type(outer) is list and len(outer) == 3 and type(outer[1]) is bytes:
        return sha256(outer[1])
    return None


def _assemble(
    body: TxBody, signatures: tuple[TxSignature, ...], body_bytes: bytes, encoded: bytes
) -> SignedTx:
    """Build a SignedTx from already-checked canonical parts (`encoded` is the canonical
    signed-tx encoding), skipping the re-encode of the body."""
    tx = object.__new__(SignedTx)
    object.__setattr__(tx, "body", body)
    object.__setattr__(tx, "signatures", signatures)
    object.__setattr__(tx, "body_bytes", body_bytes)
    object.__setattr__(tx, "hash", sha256(body_bytes))
    object.__setattr__(tx, "wire_hash", sha256(encoded))
    return tx


def _body_from_obj(obj: Any) -> TxBody:
    items = expect_list(obj, 7, "tx body")
    expect_version(items[0], TX_VERSION, "tx body")
    raw_commands = expect_list_max(items[5], MAX_COMMANDS_PER_TX, "tx commands")
    return TxBody(
        version=items[0],
        chain_id=expect_str(items[1], MAX_CHAIN_ID_BYTES, "chain_id"),
        signer=expect_str(items[2], 64, "signer"),
        nonce=expect_int(items[3], 0, MAX_NONCE, "nonce"),
        created_at=expect_int(items[4], 0, MAX_TIMESTAMP, "created_at"),
        commands=tuple(decode_command(c) for c in raw_commands),
        memo=expect_str(items[6], MAX_MEMO_BYTES, "memo"),
    )


def _signature_from_obj(obj: Any) -> TxSignature:
    items = expect_list(obj, 2, "signature")
    return TxSignature(
        expect_bytes(items[0], PUBLIC_KEY_SIZE, "signature public key"),
        expect_bytes(items[1], SIGNATURE_SIZE, "signature"),
    )


def compute_next_nonce(committed: int, pending: Iterable[int]) -> int:
    """The nonce a signer's next tx takes: the first one from its committed next nonce
    that no pending tx holds. Never past a gap: a tx after a gap waits, queued, until
    the gap fills, and so would everything signed after it."""
    taken = set(pending)
    nonce = committed
    while nonce in taken:
        nonce += 1
    return nonce


def compute_tx_signing_root(tx_hash: bytes) -> bytes:
    return signing_root_of_hash(DOMAIN_TX, tx_hash)


def sign_tx(body: TxBody, key: PrivateKey) -> SignedTx:
    """Sign a body with one key (more signatures can be added with `add_signature`)."""
    return add_signature(SignedTx(body, ()), key)


def add_signature(tx: SignedTx, key: PrivateKey) -> SignedTx:
    signature = TxSignature(key.public_key, key.sign_root(compute_tx_signing_root(tx.hash)))
    signatures = (*tx.signatures, signature)
    return _assemble(tx.body, signatures, tx.body_bytes, _encode_signed(tx.body_bytes, signatures))


def is_signature_valid(tx: SignedTx) -> bool:
    """True if the tx has at least one signature and every one verifies. The expensive
    part of admission: nodes cache its verdict by `wire_hash` (never by the body hash,
    which does not cover the signatures)."""
    if not tx.signatures:
        return False
    root = compute_tx_signing_root(tx.hash)
    return all(verify_root(s.public_key, root, s.signature) for s in tx.signatures)


def check_signer_keys(tx: SignedTx, registered_keys: Collection[bytes]) -> None:
    """Every signature is by a key registered for the signer (`registered_keys`: one per
    account today; a collection for multisig), at least one, no key twice. A valid
    signature by any other key does not count: it makes the tx invalid. Checked before
    any signature is verified, so a foreign key never costs a verification."""
    signatures = tx.signatures
    if len(signatures) == 1:  # the common case, the same rules without the containers
        if signatures[0].public_key not in registered_keys:
            raise BadSignature(f"tx {tx.hash.hex()}: signed by a key not registered for the signer")
        return
    keys = [s.public_key for s in signatures]
    # Signed at all.
    if not keys:
        raise BadSignature(f"tx {tx.hash.hex()}: no signature")
    # No key signs twice.
    if len(set(keys)) != len(keys):
        raise BadSignature(f"tx {tx.hash.hex()}: a key signs twice")
    # Only the signer's own keys sign.
    if any(key not in registered_keys for key in keys):
        raise BadSignature(f"tx {tx.hash.hex()}: signed by a key not registered for the signer")


def check_tx_stateless(tx: SignedTx, chain_id: str) -> None:
    """Everything about a tx that needs no state: signers, chain, signatures. (Size needs
    no check: the field limits keep every well-formed tx within MAX_TX_BYTES.)"""
    # At least one signature, no key twice.
    keys = [s.public_key for s in tx.signatures]
    if not keys or len(set(keys)) != len(keys):
        raise MalformedTx("tx needs at least one signature and no duplicate signer key")
    # Meant for this chain.
    if tx.body.chain_id != chain_id:
        raise WrongChain(f"tx is for chain {tx.body.chain_id!r}, this is {chain_id!r}")
    # Every signature verifies.
    if not is_signature_valid(tx):
        raise BadSignature(f"tx {tx.hash.hex()}: a signature does not verify")
