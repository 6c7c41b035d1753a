"""process_register_bank: the central bank admits a bank and its operator account."""

from __future__ import annotations

from ledger.commands import CreateAccount, Issue, RegisterBank
from ledger.state import Account, Bank
from tests.ledger.helpers import Ledger, make_key

OPERATOR = make_key("admin@prince")
NODE = make_key("node/prince")


def register(ledger: Ledger, signer: str = "admin@nbc", code: str = "prince"):
    cmd = RegisterBank(code, "Prince Bank", OPERATOR.public_key, NODE.public_key)
    return ledger.apply_tx(ledger.sign(signer, cmd))


def test_basic() -> None:
    ledger = Ledger()
    result = register(ledger)
    assert result.code is None and result.accounts == ("admin@nbc", "admin@prince")
    state = ledger.state()
    assert state.get_bank("prince") == Bank(
        "prince", "Prince Bank", OPERATOR.public_key, NODE.public_key, False
    )
    assert state.get_account("admin@prince") == Account(OPERATOR.public_key, "bank", 0, False)
    assert ledger.apply_tx(ledger.sign("admin@nbc", Issue("admin@prince", "USD", 9))).code is None
    opened = ledger.sign("admin@prince", CreateAccount("sok@prince", b""))
    assert ledger.apply_tx(opened).code is None


def test_invalid_bank_exists() -> None:
    ledger = Ledger()
    assert register(ledger, code="aclb").code == "bank_exists"
    assert register(ledger, code="nbc").code == "bank_exists"


def test_invalid_permission() -> None:
    ledger = Ledger()
    assert register(ledger, signer="admin@aclb").code == "permission_denied"
    assert ledger.state().get_bank("prince") is None
