"""The fast path of `SignedTx.decode` against its strict path, which is the rule.

The fast path may only ever say "accept, and here is the same tx the strict path builds"
or "not sure" (None): it must never accept what the strict path refuses, nor build a
different tx. Here both paths see valid txs of every command kind and txs with one field
replaced by an edge value, and must agree on each."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.codec import pack, unpack
from ledger.commands import (
    MAX_KHQR_BYTES,
    MAX_REFERENCE_BYTES,
    TAG_TRANSFER,
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
from ledger.constants import MAX_AMOUNT, MAX_COMMANDS_PER_TX, MAX_MEMO_BYTES, TX_VERSION
from ledger.errors import CodecError
from ledger.tx import (
    MAX_NONCE,
    MAX_SIGNATURES,
    SignedTx,
    TxBody,
    _decode_fast,
    _decode_strict,
    add_signature,
    sign_tx,
)
from tests.ledger.helpers import CHAIN_ID, make_key

KEYS = [make_key(f"fast{i}") for i in range(MAX_SIGNATURES)]
account = st.sampled_from(["alice@aclb", "bob@wing", "a@bb", "x" * 32 + "@" + "b" * 16])
asset = st.sampled_from(["KHR", "USD", "ABCDEFGH"])
amount = st.one_of(st.integers(1, 10**6), st.just(MAX_AMOUNT))
reference = st.one_of(st.just(""), st.text(max_size=MAX_REFERENCE_BYTES // 4), st.just("é" * 32))
khqr = st.one_of(st.just(""), st.just("k" * MAX_KHQR_BYTES), st.text(max_size=40))

commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Transfer, account, account, asset, amount, reference, khqr),
    st.builds(Transfer, account, account, asset, amount),
    st.builds(Issue, account, asset, amount),
    st.builds(Redeem, account, asset, amount),
    st.builds(CreateAccount, account, st.sampled_from([b"", bytes(32)])),
    st.builds(Freeze, account),
    st.builds(Unfreeze, account),
    st.builds(AddValidator, st.just("aclb")),
    st.builds(RemoveValidator, st.just("wing")),
    st.builds(
        RegisterBank, st.just("prince"), st.just("Prince"), st.just(bytes(32)), st.just(bytes(32))
    ),
    st.builds(SetRate, st.just("aclb"), st.just("KHR"), st.just("USD"), amount, amount),
    st.builds(
        FxTransfer,
        account,
        account,
        st.just("aclb"),
        st.just("USD"),
        amount,
        st.just("KHR"),
        amount,
    ),
)

bodies = st.builds(
    TxBody,
    st.just(TX_VERSION),
    st.one_of(st.just(CHAIN_ID), st.just("c" * 64), st.just("é" * 32)),
    account,
    st.one_of(st.integers(0, 1000), st.just(MAX_NONCE)),
    st.integers(0, 2**63 - 1),
    st.lists(commands, min_size=1, max_size=4).map(tuple),
    st.one_of(st.just(""), st.text(max_size=MAX_MEMO_BYTES // 4), st.just("ស" * 85)),
)


def signed(body: TxBody, signers: int) -> SignedTx:
    tx = SignedTx(body, ())
    for key in KEYS[:signers]:
        tx = add_signature(tx, key)
    return tx


def outcome(decode: Any, data: bytes) -> object:
    """What a decoder makes of `data`: the tx and its hashes, or the refusal's code."""
    try:
        tx = decode(data)
    except CodecError as exc:
        return ("refused", exc.code)
    return (tx, tx.hash, tx.wire_hash, tx.body_bytes, tx.encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.integers(0, MAX_SIGNATURES))
def test_the_fast_path_takes_every_valid_tx_and_builds_the_same(body: TxBody, signers: int) -> None:
    data = signed(body, signers).encode()
    fast = _decode_fast(data)
    assert fast is not None
    assert outcome(lambda _: fast, data) == outcome(_decode_strict, data)
    assert type(fast.body.commands) is tuple
    assert [type(c) for c in fast.body.commands] == [type(c) for c in body.commands]


EDGE_VALUES: list[object] = [
    0,
    1,
    -1,
    7,
    TAG_TRANSFER,
    MAX_AMOUNT,
    MAX_AMOUNT + 1,
    2**63,
    2**64 - 1,
    True,
    False,
    None,
    1.5,
    7.0,
    "",
    "KHR",
    "khr",
    "alice@aclb",
    "Alice@aclb",
    "alice@aclb@wing",
    "x" * 33 + "@aclb",
    "c" * 65,
    "é" * 33,
    "k" * (MAX_KHQR_BYTES + 1),
    "ស" * 86,
    b"",
    bytes(31),
    bytes(32),
    bytes(33),
    bytes(64),
    bytes(65),
    [],
    [1],
    [[]],
    {},
    {"a": 1},
]


def leaf_paths(obj: object, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Every position in a nested list, containers included."""
    paths = [path]
    if isinstance(obj, list):
        for index, item in enumerate(obj):
            paths.extend(leaf_paths(item, (*path, index)))
    return paths


def replace(obj: Any, path: tuple[int, ...], value: object) -> Any:
    if not path:
        return value
    copy = list(obj)
    copy[path[0]] = replace(obj[path[0]], path[1:], value)
    return copy


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid tx with one position (in the outer array or in the body) replaced by an
    edge value, or a list grown or shrunk, re-encoded canonically."""
    tx = signed(draw(bodies), draw(st.integers(0, 2)))
    outer = unpack(tx.encode())
    body = unpack(outer[1])
    in_body = draw(st.booleans())
    target = body if in_body else outer
    path = draw(st.sampled_from(leaf_paths(target)))
    edit = draw(st.sampled_from(["replace", "append", "drop"]))
    node = target
    for index in path:
        node = node[index]
    if edit == "append" and isinstance(node, list):
        changed = replace(target, path, [*node, draw(st.sampled_from(EDGE_VALUES))])
    elif edit == "drop" and isinstance(node, list) and node:
        changed = replace(target, path, node[:-1])
    else:
        changed = replace(target, path, draw(st.sampled_from(EDGE_VALUES)))
    if in_body:
        outer[1] = pack(changed)
        return pack(outer)
    return pack(changed)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_fast_path_never_accepts_what_the_strict_path_refuses(data: bytes) -> None:
    strict = outcome(_decode_strict, data)
    fast = _decode_fast(data)
    if fast is None:
        assert outcome(SignedTx.decode, data) == strict
    else:
        assert outcome(lambda _: fast, data) == strict
    assert outcome(SignedTx.decode, data) == strict


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 200), st.binary(min_size=1, max_size=3))
def test_corrupt_bytes_get_the_same_verdict_from_both_paths(
    noise: bytes, at: int, patch: bytes
) -> None:
    valid = sign_tx(
        TxBody(
            TX_VERSION,
            CHAIN_ID,
            "alice@aclb",
            1,
            2,
            (Transfer("alice@aclb", "bob@wing", "KHR", 5),),
        ),
        KEYS[0],
    ).encode()
    spliced = valid[:at] + patch + valid[at + len(patch) :]
    for data in (noise, spliced, valid[:at], valid + patch):
        strict = outcome(_decode_strict, data)
        assert outcome(SignedTx.decode, data) == strict
        if isinstance(strict, tuple) and strict[0] == "refused":
            assert _decode_fast(data) is None


def test_non_canonical_encodings_are_left_to_the_strict_path() -> None:
    tx = signed(TxBody(TX_VERSION, CHAIN_ID, "alice@aclb", 3, 2, (Issue("a@bb", "KHR", 5),)), 1)
    outer = unpack(tx.encode())
    # the nonce 3 as a uint16 where a fixint says it: the same value, another encoding
    wide_body = outer[1].replace(b"\x03\x02", b"\xcd\x00\x03\x02", 1)
    assert unpack(wide_body) == unpack(outer[1]) and wide_body != outer[1]
    # the outer array with a 16-bit length where a fixarray says it
    wide_outer = b"\xdc\x00\x03" + tx.encode()[1:]
    assert unpack(wide_outer) == outer
    for data in (pack([outer[0], wide_body, outer[2]]), wide_outer):
        assert _decode_fast(data) is None
        with pytest.raises(CodecError) as info:
            SignedTx.decode(data)
        assert info.value.code == "non_canonical"


REPRESENTATIVE = [
    Transfer("alice@aclb", "bob@wing", "KHR", 100),
    Transfer("alice@aclb", "bob@wing", "USD", MAX_AMOUNT, "é" * 32, "k" * MAX_KHQR_BYTES),
    Issue("admin@aclb", "KHR", 1),
    Redeem("admin@aclb", "KHR", 1),
    CreateAccount("carol@aclb", bytes(32), "merchant"),
    Freeze("bob@wing"),
    Unfreeze("bob@wing"),
    AddValidator("aclb"),
    RemoveValidator("wing"),
    RegisterBank("prince", "Prince", bytes(32), bytes(32)),
    SetRate("aclb", "KHR", "USD", 1, 4100),
    FxTransfer("alice@aclb", "bob@wing", "aclb", "USD", 1, "KHR", 4100, "r", "q"),
]


@pytest.mark.parametrize("command", REPRESENTATIVE, ids=lambda c: type(c).__name__)
def test_every_field_replaced_by_every_edge_value_gets_the_strict_verdict(
    command: Command,
) -> None:
    """Exhaustive where the random test samples: each position of a tx of each command
    kind (outer array, body, command, signature), each replaced by each edge value."""
    body = TxBody(TX_VERSION, CHAIN_ID, "alice@aclb", MAX_NONCE, 2, (command,), "memo")
    outer = unpack(signed(body, 2).encode())
    body_obj = unpack(outer[1])
    cases = []
    for path in leaf_paths(outer):
        cases += [pack(replace(outer, path, value)) for value in EDGE_VALUES]
    for path in leaf_paths(body_obj):
        for value in EDGE_VALUES:
            cases.append(pack([outer[0], pack(replace(body_obj, path, value)), outer[2]]))
    accepted = 0
    for data in cases:
        strict = outcome(_decode_strict, data)
        fast = _decode_fast(data)
        if isinstance(strict, tuple) and strict[0] == "refused":
            assert fast is None, data
        else:
            accepted += 1
            assert fast is not None and outcome(lambda _, tx=fast: tx, data) == strict
        assert outcome(SignedTx.decode, data) == strict
    assert accepted > 0  # some edits keep a tx valid (another name, amount, memo)


def test_too_many_signatures_or_commands_are_left_to_the_strict_path() -> None:
    body = TxBody(TX_VERSION, CHAIN_ID, "alice@aclb", 1, 2, (Freeze("bob@wing"),), "")
    outer = unpack(signed(body, MAX_SIGNATURES).encode())
    outer[2].append(outer[2][0])
    body_obj = unpack(outer[1])
    body_obj[5] = body_obj[5] * (MAX_COMMANDS_PER_TX + 1)
    for data in (pack(outer), pack([outer[0], pack(body_obj), outer[2][:1]])):
        assert _decode_fast(data) is None
        with pytest.raises(CodecError) as info:
            SignedTx.decode(data)
        assert info.value.code == "oversize"
