"""Commands: field checks at construction, canonical `[tag, ...fields]` round trip."""

from __future__ import annotations

import pytest

from ledger.codec import pack, unpack
from ledger.commands import (
    AddValidator,
    CreateAccount,
    Freeze,
    Issue,
    Redeem,
    RegisterBank,
    RemoveValidator,
    Transfer,
    Unfreeze,
    decode_command,
    encode_command,
    get_command_accounts,
)
from ledger.constants import MAX_AMOUNT
from ledger.errors import CodecError, MalformedTx

KEY = bytes(range(32))
ALL_COMMANDS = [
    RegisterBank("aclb", "ACLEDA Bank", KEY, bytes(32)),
    AddValidator("aclb"),
    RemoveValidator("aclb"),
    CreateAccount("alice@aclb", KEY),
    CreateAccount("shop@aclb", b"", "customer"),
    Issue("admin@aclb", "KHR", 100),
    Redeem("admin@aclb", "USD", MAX_AMOUNT),
    Transfer("alice@aclb", "bob@wing", "KHR", 1, "a" * 64),
    Freeze("alice@aclb"),
    Unfreeze("alice@aclb"),
]


def test_basic() -> None:
    for cmd in ALL_COMMANDS:
        encoded = pack(encode_command(cmd))
        assert decode_command(unpack(encoded)) == cmd
    assert encode_command(Transfer("a@bb", "c@dd", "KHR", 5)) == [
        7,
        "a@bb",
        "c@dd",
        "KHR",
        5,
        "",
        "",
    ]


def test_tags_are_distinct() -> None:
    tags = {encode_command(cmd)[0] for cmd in ALL_COMMANDS}
    assert tags == set(range(1, 10))


def test_command_accounts() -> None:
    assert get_command_accounts(Transfer("a@bb", "c@dd", "KHR", 5)) == ("a@bb", "c@dd")
    assert get_command_accounts(RegisterBank("aclb", "A", KEY, KEY)) == ("admin@aclb",)
    assert get_command_accounts(AddValidator("aclb")) == ()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Transfer("alice", "bob@wing", "KHR", 1),
        lambda: Transfer("alice@aclb", "bob@wing", "khr", 1),
        lambda: Transfer("alice@aclb", "bob@wing", "KHR", 0),
        lambda: Transfer("alice@aclb", "bob@wing", "KHR", MAX_AMOUNT + 1),
        lambda: Transfer("alice@aclb", "bob@wing", "KHR", True),
        lambda: Transfer("alice@aclb", "bob@wing", "KHR", 1, "x" * 65),
        lambda: Issue("admin@aclb", "KHR", -1),
        lambda: Redeem("Admin@aclb", "KHR", 1),
        lambda: RegisterBank("A", "name", KEY, KEY),
        lambda: RegisterBank("aclb", "n" * 129, KEY, KEY),
        lambda: RegisterBank("aclb", "name", KEY[:31], KEY),
        lambda: RegisterBank("aclb", "name", KEY, b""),
        lambda: CreateAccount("alice@aclb", KEY[:5]),
        lambda: CreateAccount("alice@aclb", KEY, "Boss"),
        lambda: AddValidator("x"),
        lambda: RemoveValidator(""),
        lambda: Freeze("nobody"),
        lambda: Unfreeze("a@b"),
    ],
)
def test_invalid_fields(build: object) -> None:
    with pytest.raises(MalformedTx):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        ([], "wrong_length"),
        ("transfer", "wrong_type"),
        ([99, "a@bb"], "unknown_command"),
        ([7, "a@bb", "c@dd", "KHR", 5], "wrong_length"),
        # a transfer of the old layout (no khqr field)
        ([7, "a@bb", "c@dd", "KHR", 5, ""], "wrong_length"),
        ([7, "a@bb", "c@dd", "KHR", "5", "", ""], "wrong_type"),
        ([7, "a@bb", "c@dd", "KHR", 0, "", ""], "invalid_field"),
        ([7, "a@bb", "c@dd", "KHR", 5, "", b"code"], "wrong_type"),
        ([7, "a@bb", "c@dd", "KHR", 5, "", "x" * 1025], "oversize"),
        ([8, b"a@bb"], "wrong_type"),
        ([1, "aclb", "A", "00" * 32, KEY], "wrong_type"),
        ([True, "a@bb"], "wrong_type"),
    ],
)
def test_invalid_decode(obj: object, code: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_command(obj)
    assert info.value.code == code
