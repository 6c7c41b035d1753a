"""process_create_account: banks open accounts in their own domain; nbc anywhere."""

from __future__ import annotations

from ledger.commands import CreateAccount, Transfer
from ledger.state import Account
from tests.ledger.helpers import Ledger, make_key

KEY = make_key("erin@aclb").public_key


def create(ledger: Ledger, signer: str, account: str, role: str = "customer", key: bytes = KEY):
    return ledger.apply_tx(ledger.sign(signer, CreateAccount(account, key, role)))


def test_basic() -> None:
    ledger = Ledger()
    result = create(ledger, "admin@aclb", "erin@aclb")
    assert result.code is None and result.accounts == ("admin@aclb", "erin@aclb")
    assert ledger.account("erin@aclb") == Account(KEY, "customer", 0, False)
    pay = ledger.sign("alice@aclb", Transfer("alice@aclb", "erin@aclb", "KHR", 10))
    assert ledger.apply_tx(pay).code is None
    back = ledger.sign("erin@aclb", Transfer("erin@aclb", "alice@aclb", "KHR", 4))
    assert ledger.apply_tx(back).code is None
    assert ledger.balance("erin@aclb", "KHR") == 6


def test_custodial_account_without_key() -> None:
    ledger = Ledger()
    assert create(ledger, "admin@aclb", "shop@aclb", key=b"").code is None
    assert ledger.account("shop@aclb") == Account(b"", "customer", 0, False)


def test_central_bank_creates_any_role_anywhere() -> None:
    ledger = Ledger()
    assert create(ledger, "admin@nbc", "ops@wing", role="bank").code is None
    assert ledger.account("ops@wing").role == "bank"  # type: ignore[union-attr]


def test_invalid_permission_outside_own_domain() -> None:
    assert create(Ledger(), "admin@aclb", "erin@wing").code == "permission_denied"


def test_invalid_permission_role_above_customer() -> None:
    assert create(Ledger(), "admin@aclb", "erin@aclb", role="bank").code == "permission_denied"


def test_invalid_permission_customer() -> None:
    assert create(Ledger(), "alice@aclb", "erin@aclb").code == "permission_denied"


def test_invalid_unknown_bank() -> None:
    assert create(Ledger(), "admin@nbc", "erin@nowhere").code == "unknown_bank"


def test_invalid_account_exists() -> None:
    ledger = Ledger()
    assert create(ledger, "admin@aclb", "alice@aclb").code == "account_exists"
    assert create(ledger, "admin@aclb", "admin@aclb").code == "account_exists"


def test_invalid_unknown_role() -> None:
    assert create(Ledger(), "admin@nbc", "erin@aclb", role="auditor").code == "invalid_command"
