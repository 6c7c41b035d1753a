"""process_issue: the central bank creates money in a bank's settlement account."""

from __future__ import annotations

from ledger.commands import Freeze, Issue
from ledger.constants import MAX_AMOUNT
from ledger.state import Supply
from ledger.transition import apply_tx
from tests.ledger.helpers import Ledger


def issue(ledger: Ledger, to: str, amount: int, asset: str = "KHR", signer: str = "admin@nbc"):
    return ledger.apply_tx(ledger.sign(signer, Issue(to, asset, amount)))


def test_basic() -> None:
    ledger = Ledger()
    before = ledger.state().get_supply("USD")
    result = issue(ledger, "admin@aclb", 2_500, "USD")
    assert result.code is None and result.accounts == ("admin@aclb", "admin@nbc")
    assert ledger.balance("admin@aclb", "USD") == 102_500
    assert ledger.state().get_supply("USD") == Supply(before.issued + 2_500, before.redeemed)


def test_into_a_bank_with_no_balance_yet() -> None:
    ledger = Ledger()
    assert issue(ledger, "admin@canadia", 7).code is None
    assert ledger.balance("admin@canadia", "KHR") == 7


def test_invalid_not_a_settlement_account() -> None:
    assert issue(Ledger(), "alice@aclb", 1).code == "invalid_command"


def test_invalid_unknown_bank() -> None:
    assert issue(Ledger(), "admin@nowhere", 1).code == "unknown_bank"


def test_invalid_account_frozen() -> None:
    ledger = Ledger()
    assert ledger.apply_tx(ledger.sign("admin@nbc", Freeze("admin@aclb"))).code is None
    assert issue(ledger, "admin@aclb", 1).code == "account_frozen"


def test_invalid_unknown_asset() -> None:
    assert issue(Ledger(), "admin@aclb", 1, "EUR").code == "unknown_asset"


def test_invalid_overflow() -> None:
    ledger = Ledger()
    assert issue(ledger, "admin@canadia", MAX_AMOUNT).code == "overflow"
    state = ledger.state()
    state.set_supply("KHR", Supply(MAX_AMOUNT - 1, MAX_AMOUNT - 10))
    tx = ledger.sign("admin@nbc", Issue("admin@canadia", "KHR", 2))
    assert apply_tx(state, ledger.context(), tx).code == "overflow"


def test_invalid_permission() -> None:
    ledger = Ledger()
    assert issue(ledger, "admin@aclb", 1, signer="admin@aclb").code == "permission_denied"
    assert ledger.balance("admin@aclb", "KHR") == 1_000_000
