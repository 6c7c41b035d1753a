"""process_freeze: a frozen account neither signs, sends nor receives."""

from __future__ import annotations

from ledger.commands import Freeze, Transfer
from tests.ledger.helpers import Ledger


def freeze(ledger: Ledger, account: str, signer: str = "admin@nbc"):
    return ledger.apply_tx(ledger.sign(signer, Freeze(account)))


def test_basic() -> None:
    ledger = Ledger()
    result = freeze(ledger, "alice@aclb")
    assert result.code is None and result.accounts == ("admin@nbc", "alice@aclb")
    assert ledger.account("alice@aclb").frozen  # type: ignore[union-attr]
    own = ledger.sign("alice@aclb", Transfer("alice@aclb", "bob@aclb", "KHR", 1))
    assert ledger.apply_tx(own).code == "account_frozen"
    by_bank = ledger.sign("admin@aclb", Transfer("alice@aclb", "bob@aclb", "KHR", 1))
    assert ledger.apply_tx(by_bank).code == "account_frozen"
    incoming = ledger.sign("bob@aclb", Transfer("bob@aclb", "alice@aclb", "KHR", 1))
    assert ledger.apply_tx(incoming).code == "account_frozen"
    to_alice = ledger.sign("admin@aclb", Transfer("admin@aclb", "alice@aclb", "KHR", 1))
    assert ledger.apply_tx(to_alice).code == "account_frozen"


def test_frozen_bank_operator_cannot_sign() -> None:
    ledger = Ledger()
    assert freeze(ledger, "admin@wing").code is None
    tx = ledger.sign("admin@wing", Transfer("dave@wing", "carol@wing", "KHR", 1))
    assert ledger.apply_tx(tx).code == "account_frozen"


def test_invalid_unknown_account() -> None:
    assert freeze(Ledger(), "ghost@aclb").code == "unknown_account"


def test_invalid_central_bank_operator() -> None:
    assert freeze(Ledger(), "admin@nbc").code == "invalid_command"


def test_invalid_already_frozen() -> None:
    ledger = Ledger()
    assert freeze(ledger, "bob@aclb").code is None
    assert freeze(ledger, "bob@aclb").code == "invalid_command"


def test_invalid_permission() -> None:
    ledger = Ledger()
    assert freeze(ledger, "alice@aclb", signer="admin@aclb").code == "permission_denied"
    assert not ledger.account("alice@aclb").frozen  # type: ignore[union-attr]
