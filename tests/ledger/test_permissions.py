"""is_permitted: one function decides (the one process_command asks); banks stay in their
domain."""

from __future__ import annotations

import pytest

from ledger.commands import (
    AddValidator,
    Command,
    CreateAccount,
    Freeze,
    Issue,
    Redeem,
    RegisterBank,
    RemoveValidator,
    Transfer,
    Unfreeze,
)
from ledger.errors import PermissionDenied
from ledger.permissions import get_permissions, get_role_permissions, is_permitted
from ledger.state import State
from tests.ledger.helpers import Ledger


def may_execute(state: State, signer: str, cmd: Command) -> bool:
    """What process_command decides first: the signer's role permits the command."""
    return is_permitted(get_permissions(state, signer), signer, cmd)


def check_permission(state: State, signer: str, cmd: Command) -> None:
    if not may_execute(state, signer, cmd):
        raise PermissionDenied(f"{signer} may not run {type(cmd).__name__}")


KEY = bytes(32)
ADMIN_COMMANDS: list[Command] = [
    RegisterBank("prince", "Prince", KEY, KEY),
    AddValidator("canadia"),
    RemoveValidator("wing"),
    Issue("admin@aclb", "KHR", 1),
    Redeem("admin@aclb", "KHR", 1),
    Freeze("alice@aclb"),
    Unfreeze("alice@aclb"),
]


def test_basic() -> None:
    state = Ledger().state()
    check_permission(state, "alice@aclb", Transfer("alice@aclb", "carol@wing", "KHR", 1))
    check_permission(state, "admin@aclb", Transfer("alice@aclb", "carol@wing", "KHR", 1))
    check_permission(state, "admin@aclb", Transfer("admin@aclb", "carol@wing", "KHR", 1))
    check_permission(state, "admin@aclb", CreateAccount("erin@aclb", KEY))


def test_central_bank_may_do_everything() -> None:
    state = Ledger().state()
    everything = [
        *ADMIN_COMMANDS,
        CreateAccount("erin@wing", KEY, "bank"),
        Transfer("carol@wing", "alice@aclb", "KHR", 1),
    ]
    assert all(may_execute(state, "admin@nbc", cmd) for cmd in everything)


@pytest.mark.parametrize("signer", ["admin@aclb", "alice@aclb"])
@pytest.mark.parametrize("cmd", ADMIN_COMMANDS)
def test_invalid_admin_command_by_non_central_bank(signer: str, cmd: Command) -> None:
    with pytest.raises(PermissionDenied):
        check_permission(Ledger().state(), signer, cmd)


@pytest.mark.parametrize(
    ("signer", "cmd"),
    [
        ("alice@aclb", Transfer("bob@aclb", "alice@aclb", "KHR", 1)),
        ("alice@aclb", CreateAccount("erin@aclb", KEY)),
        ("admin@aclb", Transfer("carol@wing", "alice@aclb", "KHR", 1)),
        ("admin@aclb", CreateAccount("erin@wing", KEY)),
        ("admin@aclb", CreateAccount("erin@aclb", KEY, "bank")),
        ("admin@aclb", CreateAccount("erin@aclb", KEY, "central_bank")),
        ("ghost@aclb", Transfer("ghost@aclb", "alice@aclb", "KHR", 1)),
    ],
)
def test_invalid_outside_role_or_domain(signer: str, cmd: Command) -> None:
    assert not may_execute(Ledger().state(), signer, cmd)
    with pytest.raises(PermissionDenied):
        check_permission(Ledger().state(), signer, cmd)


def test_permissions_come_from_genesis_roles() -> None:
    state = Ledger().state()
    assert get_permissions(state, "alice@aclb") == frozenset({"transfer_own"})
    assert get_permissions(state, "ghost@aclb") == frozenset()


def test_role_permissions_and_the_pure_rule() -> None:
    state = Ledger().state()
    customer = get_role_permissions(state, "customer")
    assert customer == frozenset({"transfer_own"})
    assert get_role_permissions(state, "no_such_role") == frozenset()
    assert is_permitted(customer, "alice@aclb", Transfer("alice@aclb", "bob@aclb", "KHR", 1))
    assert not is_permitted(customer, "alice@aclb", Transfer("bob@aclb", "alice@aclb", "KHR", 1))
