"""process_unfreeze: the central bank lifts a freeze."""

from __future__ import annotations

from ledger.commands import Freeze, Transfer, Unfreeze
from tests.ledger.helpers import Ledger


def unfreeze(ledger: Ledger, account: str, signer: str = "admin@nbc"):
    return ledger.apply_tx(ledger.sign(signer, Unfreeze(account)))


def frozen_ledger() -> Ledger:
    ledger = Ledger()
    assert ledger.apply_tx(ledger.sign("admin@nbc", Freeze("alice@aclb"))).code is None
    return ledger


def test_basic() -> None:
    ledger = frozen_ledger()
    result = unfreeze(ledger, "alice@aclb")
    assert result.code is None and result.accounts == ("admin@nbc", "alice@aclb")
    assert not ledger.account("alice@aclb").frozen  # type: ignore[union-attr]
    tx = ledger.sign("alice@aclb", Transfer("alice@aclb", "bob@aclb", "KHR", 1))
    assert ledger.apply_tx(tx).code is None


def test_invalid_unknown_account() -> None:
    assert unfreeze(frozen_ledger(), "ghost@aclb").code == "unknown_account"


def test_invalid_central_bank_operator() -> None:
    assert unfreeze(frozen_ledger(), "admin@nbc").code == "invalid_command"


def test_invalid_not_frozen() -> None:
    assert unfreeze(frozen_ledger(), "bob@aclb").code == "invalid_command"


def test_invalid_permission() -> None:
    ledger = frozen_ledger()
    assert unfreeze(ledger, "alice@aclb", signer="admin@aclb").code == "permission_denied"
    assert ledger.account("alice@aclb").frozen  # type: ignore[union-attr]
