"""process_transfer: own, custodial and central-bank transfers, and each rejection."""

from __future__ import annotations

from ledger.commands import Freeze, Transfer
from ledger.constants import MAX_AMOUNT
from ledger.transition import apply_tx
from tests.ledger.helpers import Ledger


def transfer(ledger: Ledger, signer: str, src: str, dst: str, amount: int, asset: str = "KHR"):
    return ledger.apply_tx(ledger.sign(signer, Transfer(src, dst, asset, amount)))


def test_basic() -> None:
    ledger = Ledger()
    result = transfer(ledger, "alice@aclb", "alice@aclb", "carol@wing", 1_000)
    assert result.code is None
    assert result.accounts == ("alice@aclb", "carol@wing")
    assert ledger.balance("alice@aclb", "KHR") == 49_000
    assert ledger.balance("carol@wing", "KHR") == 51_000
    assert ledger.nonce("alice@aclb") == 1


def test_whole_balance_deletes_the_key() -> None:
    ledger = Ledger()
    assert transfer(ledger, "alice@aclb", "alice@aclb", "bob@aclb", 10_000, "USD").code is None
    assert ledger.balance("alice@aclb", "USD") == 0
    assert b"s/b/alice@aclb/USD" not in ledger.dump()


def test_custodial_by_own_bank() -> None:
    ledger = Ledger()
    result = transfer(ledger, "admin@wing", "dave@wing", "alice@aclb", 500)
    assert result.code is None
    assert result.accounts == ("admin@wing", "alice@aclb", "dave@wing")
    assert ledger.balance("dave@wing", "KHR") == 19_500
    assert ledger.nonce("admin@wing") == 1 and ledger.nonce("dave@wing") == 0


def test_central_bank_moves_any_funds() -> None:
    ledger = Ledger()
    assert transfer(ledger, "admin@nbc", "carol@wing", "bob@aclb", 5).code is None
    assert ledger.balance("bob@aclb", "KHR") == 5


def test_invalid_same_account() -> None:
    ledger = Ledger()
    assert transfer(ledger, "alice@aclb", "alice@aclb", "alice@aclb", 1).code == "invalid_command"


def test_invalid_unknown_sender() -> None:
    ledger = Ledger()
    assert transfer(ledger, "admin@nbc", "ghost@aclb", "bob@aclb", 1).code == "unknown_account"


def test_invalid_unknown_receiver() -> None:
    ledger = Ledger()
    assert transfer(ledger, "alice@aclb", "alice@aclb", "ghost@aclb", 1).code == "unknown_account"


def test_invalid_frozen_sender() -> None:
    ledger = Ledger()
    assert ledger.apply_tx(ledger.sign("admin@nbc", Freeze("dave@wing"))).code is None
    assert transfer(ledger, "admin@wing", "dave@wing", "carol@wing", 1).code == "account_frozen"


def test_invalid_frozen_receiver() -> None:
    ledger = Ledger()
    assert ledger.apply_tx(ledger.sign("admin@nbc", Freeze("carol@wing"))).code is None
    assert transfer(ledger, "alice@aclb", "alice@aclb", "carol@wing", 1).code == "account_frozen"


def test_invalid_unknown_asset() -> None:
    ledger = Ledger()
    code = transfer(ledger, "alice@aclb", "alice@aclb", "bob@aclb", 1, "EUR").code
    assert code == "unknown_asset"


def test_invalid_insufficient_funds() -> None:
    ledger = Ledger()
    code = transfer(ledger, "alice@aclb", "alice@aclb", "bob@aclb", 50_001).code
    assert code == "insufficient_funds"
    assert ledger.balance("alice@aclb", "KHR") == 50_000
    assert ledger.nonce("alice@aclb") == 0


def test_invalid_overflow() -> None:
    ledger = Ledger()
    state = ledger.state()
    state.set_balance("bob@aclb", "KHR", MAX_AMOUNT)
    tx = ledger.sign("alice@aclb", Transfer("alice@aclb", "bob@aclb", "KHR", 1))
    assert apply_tx(state, ledger.context(), tx).code == "overflow"
    assert state.get_balance("alice@aclb", "KHR") == 50_000


def test_invalid_permission_customer_moves_others_funds() -> None:
    ledger = Ledger()
    code = transfer(ledger, "bob@aclb", "alice@aclb", "bob@aclb", 1).code
    assert code == "permission_denied"


def test_invalid_permission_bank_outside_its_domain() -> None:
    ledger = Ledger()
    code = transfer(ledger, "admin@aclb", "carol@wing", "alice@aclb", 1).code
    assert code == "permission_denied"


def test_invalid_custodial_account_cannot_sign() -> None:
    ledger = Ledger()
    code = transfer(ledger, "dave@wing", "dave@wing", "carol@wing", 1).code
    assert code == "bad_signature"
