"""process_remove_validator: leaves the set two heights after its block; never empties it."""

from __future__ import annotations

from ledger.commands import RemoveValidator
from ledger.state import get_validator_set
from tests.ledger.helpers import Ledger, make_genesis, make_node_key


def remove(ledger: Ledger, bank: str, signer: str = "admin@nbc"):
    return ledger.apply_tx(ledger.sign(signer, RemoveValidator(bank)))


def node(bank: str) -> tuple[str, bytes]:
    return (bank, make_node_key(bank).public_key)


def test_basic() -> None:
    ledger = Ledger()
    result = remove(ledger, "wing")
    assert result.code is None
    assert get_validator_set(ledger.store, 2) == (node("aclb"), node("nbc"), node("wing"))
    assert get_validator_set(ledger.store, 3) == (node("aclb"), node("nbc"))
    assert not ledger.state().get_bank("wing").validator  # type: ignore[union-attr]
    ledger.apply([])
    ledger.apply([])
    assert ledger.state().get_validators() == (node("aclb"), node("nbc"))


def test_invalid_not_a_validator() -> None:
    ledger = Ledger()
    assert remove(ledger, "canadia").code == "invalid_validator_change"
    assert remove(ledger, "wing").code is None
    assert remove(ledger, "wing").code == "invalid_validator_change"


def test_invalid_last_validator() -> None:
    ledger = Ledger(make_genesis(banks=(("nbc", True), ("aclb", False), ("wing", False))))
    assert remove(ledger, "nbc").code == "invalid_validator_change"


def test_invalid_unknown_bank() -> None:
    assert remove(Ledger(), "nowhere").code == "unknown_bank"


def test_invalid_permission() -> None:
    assert remove(Ledger(), "wing", signer="admin@wing").code == "permission_denied"
