"""Transactions: body checks, signing, hashes, strict decoding, stateless and key checks."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.codec import pack, unpack
from ledger.commands import Issue, RegisterBank, Transfer
from ledger.constants import DOMAIN_TX, DOMAIN_VOTE, MAX_TX_BYTES, TX_VERSION
from ledger.crypto import sha256, signing_root_of_hash
from ledger.errors import BadSignature, CodecError, MalformedTx, WrongChain
from ledger.tx import (
    MAX_SIGNATURES,
    SignedTx,
    TxBody,
    TxSignature,
    add_signature,
    check_signer_keys,
    check_tx_stateless,
    is_signature_valid,
    sign_tx,
)
from tests.ledger.helpers import CHAIN_ID, make_key

ALICE = make_key("alice@aclb")
BOB = make_key("bob@aclb")
KEY32 = bytes(range(32))
TRANSFER = Transfer("alice@aclb", "bob@aclb", "KHR", 100, "ref")


def make_body(**overrides: object) -> TxBody:
    fields: dict[str, object] = {
        "version": TX_VERSION,
        "chain_id": CHAIN_ID,
        "signer": "alice@aclb",
        "nonce": 3,
        "created_at": 1_700_000_000_000,
        "commands": (TRANSFER,),
        "memo": "lunch",
    }
    fields.update(overrides)
    return TxBody(**fields)  # type: ignore[arg-type]


def test_basic() -> None:
    tx = sign_tx(make_body(), ALICE)
    data = tx.encode()
    decoded = SignedTx.decode(data)
    assert decoded == tx
    assert decoded.hash == tx.hash == sha256(tx.body.encode())
    assert decoded.wire_hash == tx.wire_hash == sha256(data)
    assert decoded.encode() == data
    assert is_signature_valid(decoded)
    check_tx_stateless(decoded, CHAIN_ID)


def test_signature_covers_domain_separated_root() -> None:
    tx = sign_tx(make_body(), ALICE)
    expected = ALICE.sign_root(signing_root_of_hash(DOMAIN_TX, tx.hash))
    assert tx.signatures[0] == TxSignature(ALICE.public_key, expected)
    vote_sig = ALICE.sign_root(signing_root_of_hash(DOMAIN_VOTE, tx.hash))
    forged = dataclasses.replace(tx, signatures=(TxSignature(ALICE.public_key, vote_sig),))
    assert not is_signature_valid(forged)


def test_multisig() -> None:
    tx = add_signature(sign_tx(make_body(), ALICE), BOB)
    assert is_signature_valid(tx)
    assert [s.public_key for s in tx.signatures] == [ALICE.public_key, BOB.public_key]
    assert SignedTx.decode(tx.encode()) == tx
    assert tx.wire_hash == sha256(tx.encode()) == SignedTx.decode(tx.encode()).wire_hash
    check_tx_stateless(tx, CHAIN_ID)
    # a multisig account (registered keys: both) accepts it
    check_signer_keys(tx, {ALICE.public_key, BOB.public_key})


def test_wire_hash_covers_every_signature_and_key() -> None:
    tx = sign_tx(make_body(), ALICE)
    sig = tx.signatures[0]
    variants = [
        dataclasses.replace(tx, signatures=(TxSignature(sig.public_key, bytes(64)),)),
        dataclasses.replace(tx, signatures=(TxSignature(BOB.public_key, sig.signature),)),
        sign_tx(make_body(), BOB),
        add_signature(tx, BOB),
        SignedTx(make_body(), ()),
    ]
    # the body hash (tx id) is the same for all; the wire hash tells each apart
    assert {v.hash for v in variants} == {tx.hash}
    assert len({v.wire_hash for v in [tx, *variants]}) == len(variants) + 1
    for v in variants:
        assert v.wire_hash == sha256(v.encode()) == SignedTx.decode(v.encode()).wire_hash


def test_check_signer_keys_basic() -> None:
    check_signer_keys(sign_tx(make_body(), ALICE), (ALICE.public_key,))


def test_invalid_signer_keys_extra_signature_by_another_key() -> None:
    # BOB's signature is valid, but BOB is not a key of the signer: it makes the tx invalid
    tx = add_signature(sign_tx(make_body(), ALICE), BOB)
    assert is_signature_valid(tx)
    with pytest.raises(BadSignature):
        check_signer_keys(tx, (ALICE.public_key,))


def test_invalid_signer_keys_only_another_key() -> None:
    with pytest.raises(BadSignature):
        check_signer_keys(sign_tx(make_body(), BOB), (ALICE.public_key,))


def test_invalid_signer_keys_no_signature() -> None:
    with pytest.raises(BadSignature):
        check_signer_keys(SignedTx(make_body(), ()), (ALICE.public_key,))


def test_invalid_signer_keys_duplicate_key() -> None:
    tx = sign_tx(make_body(), ALICE)
    doubled = dataclasses.replace(tx, signatures=tx.signatures * 2)
    with pytest.raises(BadSignature):
        check_signer_keys(doubled, (ALICE.public_key,))


def test_invalid_signer_keys_keyless_account() -> None:
    with pytest.raises(BadSignature):
        check_signer_keys(sign_tx(make_body(), ALICE), ())


def test_hash_changes_with_every_field() -> None:
    base = make_body()
    variants = [
        make_body(chain_id="other"),
        make_body(signer="bob@aclb"),
        make_body(nonce=4),
        make_body(created_at=1),
        make_body(commands=(TRANSFER, TRANSFER)),
        make_body(memo=""),
    ]
    hashes = {sha256(v.encode()) for v in [base, *variants]}
    assert len(hashes) == len(variants) + 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": 2},
        {"chain_id": ""},
        {"chain_id": "x" * 65},
        {"signer": "alice"},
        {"nonce": -1},
        {"nonce": 2**63},
        {"created_at": True},
        {"commands": ()},
        {"commands": [TRANSFER]},
        {"commands": (TRANSFER,) * 65},
        {"memo": "m" * 257},
        {"memo": "\u00e9" * 129},
    ],
)
def test_invalid_body(overrides: dict[str, object]) -> None:
    with pytest.raises(MalformedTx):
        make_body(**overrides)


def test_invalid_signature_sizes() -> None:
    with pytest.raises(MalformedTx):
        TxSignature(b"k" * 31, b"s" * 64)
    with pytest.raises(MalformedTx):
        TxSignature(b"k" * 32, b"s" * 63)


def test_invalid_wrong_chain() -> None:
    tx = sign_tx(make_body(chain_id="other-chain"), ALICE)
    with pytest.raises(WrongChain):
        check_tx_stateless(tx, CHAIN_ID)


def test_invalid_bad_signature() -> None:
    tx = sign_tx(make_body(), ALICE)
    other = sign_tx(make_body(nonce=4), ALICE)
    forged = dataclasses.replace(tx, signatures=other.signatures)
    assert not is_signature_valid(forged)
    with pytest.raises(BadSignature):
        check_tx_stateless(forged, CHAIN_ID)


def test_invalid_unsigned() -> None:
    tx = SignedTx(make_body(), ())
    assert not is_signature_valid(tx)
    with pytest.raises(MalformedTx):
        check_tx_stateless(tx, CHAIN_ID)


def test_invalid_duplicate_signer_key() -> None:
    tx = sign_tx(make_body(), ALICE)
    doubled = dataclasses.replace(tx, signatures=tx.signatures * 2)
    with pytest.raises(MalformedTx):
        check_tx_stateless(doubled, CHAIN_ID)


def test_largest_tx_fits_the_wire_limit() -> None:
    name = "\u00e9" * 64
    commands = tuple(RegisterBank("b" * 16, name, KEY32, KEY32) for _ in range(64))
    body = make_body(commands=commands, memo="\u00e9" * 128, chain_id="c" * 64)
    tx = sign_tx(body, ALICE)
    for i in range(MAX_SIGNATURES - 1):
        tx = add_signature(tx, make_key(f"signer{i}"))
    assert len(tx.encode()) <= MAX_TX_BYTES
    assert SignedTx.decode(tx.encode()) == tx


def reencode(data: bytes, edit: object) -> bytes:
    outer = unpack(data)
    edit(outer)  # type: ignore[operator]
    return pack(outer)


def edit_body(index: int, value: object) -> object:
    def edit(outer: list[object]) -> None:
        body = unpack(outer[1])  # type: ignore[arg-type]
        body[index] = value
        outer[1] = pack(body)

    return edit


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d + b"\x00", "trailing_bytes"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: b"\x00" * (MAX_TX_BYTES + 1), "oversize"),
        (lambda d: reencode(d, lambda o: o.__setitem__(0, 2)), "unknown_version"),
        (lambda d: reencode(d, lambda o: o.append(1)), "wrong_length"),
        (lambda d: reencode(d, lambda o: o.__setitem__(2, [])), None),
        (lambda d: reencode(d, edit_body(0, 9)), "unknown_version"),
        (lambda d: reencode(d, edit_body(3, "3")), "wrong_type"),
        (lambda d: reencode(d, edit_body(2, "alice")), "invalid_field"),
        (lambda d: reencode(d, edit_body(6, 5)), "wrong_type"),
        (lambda d: reencode(d, edit_body(5, [])), "invalid_field"),
        (
            lambda d: reencode(d, lambda o: o.__setitem__(2, [[b"k" * 32, b"s" * 10]])),
            "wrong_length",
        ),
        (lambda d: reencode(d, lambda o: o.__setitem__(1, "body")), "wrong_type"),
    ],
)
def test_invalid_decode(mutate: object, code: str | None) -> None:
    data = mutate(sign_tx(make_body(), ALICE).encode())  # type: ignore[operator]
    if code is None:
        decoded = SignedTx.decode(data)
        assert decoded.signatures == () and not is_signature_valid(decoded)
        return
    with pytest.raises(CodecError) as info:
        SignedTx.decode(data)
    assert info.value.code == code


def test_invalid_non_canonical() -> None:
    tx = sign_tx(make_body(nonce=3), ALICE)
    outer = unpack(tx.encode())
    # 3 encoded as uint16 instead of a positive fixint: same value, another encoding.
    body = outer[1]
    wide = body.replace(b"\x03\xcf", b"\xcd\x00\x03\xcf", 1)
    assert unpack(wide) == unpack(body) and wide != body
    outer[1] = wide
    with pytest.raises(CodecError) as info:
        SignedTx.decode(pack(outer))
    assert info.value.code == "non_canonical"


def test_issue_roundtrip_memo_unicode() -> None:
    tx = sign_tx(make_body(commands=(Issue("admin@aclb", "USD", 12_50),), memo="ស្វាគមន៍"), ALICE)
    assert SignedTx.decode(tx.encode()) == tx


def test_next_nonce_never_passes_a_gap() -> None:
    from ledger.tx import compute_next_nonce

    rows = [
        (0, [], 0),
        (3, [], 3),
        (3, [3, 4, 5], 6),
        (3, [4, 5], 3),  # 3 failed and was evicted: use it again, not 6
        (3, [3, 5, 6], 4),  # a gap at 4: fill it
        (3, [1, 2], 3),  # stale pending below the committed nonce
    ]
    for committed, pending, expected in rows:
        assert compute_next_nonce(committed, pending) == expected, (committed, pending)
