"""Who may run which command: the one place every permission question is answered.

A role (defined in genesis, stored in state) is a set of permission names. Some are
global (`issue`), some are scoped to the signer's own bank domain (`create_domain_account`,
`transfer_domain`) or to the signer's own account (`transfer_own`). A domain-scoped
permission never reaches outside `name@<signer's bank>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

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
from ledger.state import State

REGISTER_BANK: Final = "register_bank"
ADD_VALIDATOR: Final = "add_validator"
REMOVE_VALIDATOR: Final = "remove_validator"
ISSUE: Final = "issue"
REDEEM: Final = "redeem"
FREEZE: Final = "freeze"
UNFREEZE: Final = "unfreeze"
CREATE_ACCOUNT: Final = "create_account"
CREATE_DOMAIN_ACCOUNT: Final = "create_domain_account"
TRANSFER: Final = "transfer"
TRANSFER_DOMAIN: Final = "transfer_domain"
TRANSFER_OWN: Final = "transfer_own"
SET_RATE: Final = "set_rate"

ALL_PERMISSIONS: Final = frozenset(
    {
        REGISTER_BANK,
        ADD_VALIDATOR,
        REMOVE_VALIDATOR,
        ISSUE,
        REDEEM,
        FREEZE,
        UNFREEZE,
        CREATE_ACCOUNT,
        CREATE_DOMAIN_ACCOUNT,
        TRANSFER,
        TRANSFER_DOMAIN,
        TRANSFER_OWN,
        SET_RATE,
    }
)

CENTRAL_BANK_ROLE: Final = "central_bank"
BANK_ROLE: Final = "bank"
CUSTOMER_ROLE: Final = "customer"

# Only this role may be given by a domain-scoped account creation: a bank cannot mint
# accounts more powerful than its customers.
DOMAIN_ACCOUNT_ROLE: Final = CUSTOMER_ROLE

DEFAULT_ROLES: Final[dict[str, frozenset[str]]] = {
    CENTRAL_BANK_ROLE: frozenset(
        {
            REGISTER_BANK,
            ADD_VALIDATOR,
            REMOVE_VALIDATOR,
            ISSUE,
            REDEEM,
            FREEZE,
            UNFREEZE,
            CREATE_ACCOUNT,
            TRANSFER,
            SET_RATE,
        }
    ),
    BANK_ROLE: frozenset({CREATE_DOMAIN_ACCOUNT, TRANSFER_DOMAIN}),
    CUSTOMER_ROLE: frozenset({TRANSFER_OWN}),
}


def _domain(account: str) -> str:
    return account[account.index("@") + 1 :]


def _may_create(perms: frozenset[str], signer: str, cmd: CreateAccount) -> bool:
    if CREATE_ACCOUNT in perms:
        return True
    return (
        CREATE_DOMAIN_ACCOUNT in perms
        and cmd.role == DOMAIN_ACCOUNT_ROLE
        and _domain(cmd.account) == _domain(signer)
    )


def _may_transfer(perms: frozenset[str], signer: str, cmd: Transfer | FxTransfer) -> bool:
    """Also decides an FxTransfer: what matters is whose funds leave (`from_`)."""
    if TRANSFER in perms:
        return True
    if TRANSFER_DOMAIN in perms and _domain(cmd.from_) == _domain(signer):
        return True
    return TRANSFER_OWN in perms and cmd.from_ == signer


_GLOBAL: Final[dict[type[Any], str]] = {
    RegisterBank: REGISTER_BANK,
    AddValidator: ADD_VALIDATOR,
    RemoveValidator: REMOVE_VALIDATOR,
    Issue: ISSUE,
    Redeem: REDEEM,
    Freeze: FREEZE,
    Unfreeze: UNFREEZE,
    SetRate: SET_RATE,
}

_SCOPED: Final[dict[type[Any], Callable[[frozenset[str], str, Any], bool]]] = {
    Transfer: _may_transfer,
    FxTransfer: _may_transfer,
    CreateAccount: _may_create,
}


def get_role_permissions(state: State, role: str) -> frozenset[str]:
    """The permission set of a role; empty for an undefined role."""
    record = state.get_role(role)
    return record.permissions if record is not None else frozenset()


def get_permissions(state: State, signer: str) -> frozenset[str]:
    """The permission set of the signer's role; empty for unknown accounts or roles."""
    account = state.get_account(signer)
    return get_role_permissions(state, account.role) if account is not None else frozenset()


def is_permitted(perms: frozenset[str], signer: str, cmd: Command) -> bool:
    """The rule itself, given the signer's permissions: a tx looks them up once, since no
    command changes an account's role."""
    scoped = _SCOPED.get(type(cmd))
    if scoped is not None:
        return scoped(perms, signer, cmd)
    # a command type no rule names is permitted to nobody
    name = _GLOBAL.get(type(cmd))
    return name is not None and name in perms
