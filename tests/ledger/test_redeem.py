"""process_redeem: the central bank takes money out of a bank's settlement account."""

from __future__ import annotations

from ledger.commands import Freeze, Redeem
from ledger.state import Supply
from tests.ledger.helpers import Ledger


def redeem(ledger: Ledger, src: str, amount: int, asset: str = "KHR", signer: str = "admin@nbc"):
    return ledger.apply_tx(ledger.sign(signer, Redeem(src, asset, amount)))


def test_basic() -> None:
    ledger = Ledger()
    before = ledger.state().get_supply("KHR")
    result = redeem(ledger, "admin@wing", 400_000)
    assert result.code is None and result.accounts == ("admin@nbc", "admin@wing")
    assert ledger.balance("admin@wing", "KHR") == 600_000
    assert ledger.state().get_supply("KHR") == Supply(before.issued, before.redeemed + 400_000)


def test_invalid_not_a_settlement_account() -> None:
    assert redeem(Ledger(), "carol@wing", 1).code == "invalid_command"


def test_invalid_unknown_bank() -> None:
    assert redeem(Ledger(), "admin@nowhere", 1).code == "unknown_bank"


def test_invalid_account_frozen() -> None:
    ledger = Ledger()
    assert ledger.apply_tx(ledger.sign("admin@nbc", Freeze("admin@wing"))).code is None
    assert redeem(ledger, "admin@wing", 1).code == "account_frozen"


def test_invalid_unknown_asset() -> None:
    assert redeem(Ledger(), "admin@wing", 1, "EUR").code == "unknown_asset"


def test_invalid_insufficient_funds() -> None:
    ledger = Ledger()
    assert redeem(ledger, "admin@wing", 1_000_001).code == "insufficient_funds"
    assert redeem(ledger, "admin@canadia", 1).code == "insufficient_funds"


def test_invalid_permission() -> None:
    assert redeem(Ledger(), "admin@wing", 1, signer="admin@wing").code == "permission_denied"
