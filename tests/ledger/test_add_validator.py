"""process_add_validator: a change committed in block h takes effect at height h + 2."""

from __future__ import annotations

from ledger.commands import AddValidator, RegisterBank
from ledger.schema import make_pending_validators_key, make_validators_key
from ledger.state import MAX_VALIDATORS, get_validator_set
from ledger.transition import apply_tx
from tests.ledger.helpers import Ledger, make_node_key


def add(ledger: Ledger, bank: str, signer: str = "admin@nbc"):
    return ledger.apply_tx(ledger.sign(signer, AddValidator(bank)))


def node(bank: str) -> tuple[str, bytes]:
    return (bank, make_node_key(bank).public_key)


GENESIS_SET = (node("aclb"), node("nbc"), node("wing"))


def test_basic() -> None:
    ledger = Ledger()
    assert get_validator_set(ledger.store, 1) == GENESIS_SET
    result = add(ledger, "canadia")  # committed in block 1
    assert result.code is None and result.accounts == ("admin@nbc",)
    with_canadia = (node("aclb"), node("canadia"), node("nbc"), node("wing"))
    assert get_validator_set(ledger.store, 2) == GENESIS_SET
    assert get_validator_set(ledger.store, 3) == with_canadia
    assert ledger.state().get_bank("canadia").validator  # type: ignore[union-attr]
    ledger.apply([])  # block 2
    assert ledger.state().get_validators() == GENESIS_SET
    ledger.apply([])  # block 3 promotes the pending set
    assert ledger.state().get_validators() == with_canadia
    assert get_validator_set(ledger.store, 4) == with_canadia
    assert make_pending_validators_key(3) not in ledger.dump()
    assert make_validators_key() in ledger.dump()


def test_changes_in_consecutive_blocks_compose() -> None:
    ledger = Ledger()
    assert add(ledger, "canadia").code is None  # block 1 -> height 3
    register = RegisterBank("prince", "Prince", make_node_key("op").public_key, node("prince")[1])
    assert ledger.apply_tx(ledger.sign("admin@nbc", register)).code is None  # block 2
    assert add(ledger, "prince").code is None  # block 3 -> height 5
    assert len(get_validator_set(ledger.store, 4)) == 4
    assert len(get_validator_set(ledger.store, 5)) == 5


def test_invalid_unknown_bank() -> None:
    assert add(Ledger(), "nowhere").code == "unknown_bank"


def test_invalid_already_validator() -> None:
    ledger = Ledger()
    assert add(ledger, "aclb").code == "invalid_validator_change"
    assert add(ledger, "canadia").code is None
    assert add(ledger, "canadia").code == "invalid_validator_change"


def test_invalid_node_key_already_validates() -> None:
    ledger = Ledger()
    clone = RegisterBank("clone", "Clone", make_node_key("x").public_key, node("aclb")[1])
    assert ledger.apply_tx(ledger.sign("admin@nbc", clone)).code is None
    assert add(ledger, "clone").code == "invalid_validator_change"


def test_invalid_too_many_validators() -> None:
    ledger = Ledger()
    state = ledger.state()
    state.set_validators(tuple((f"b{i:03d}", bytes([i % 256]) * 32) for i in range(MAX_VALIDATORS)))
    tx = ledger.sign("admin@nbc", AddValidator("canadia"))
    assert apply_tx(state, ledger.context(), tx).code == "invalid_validator_change"


def test_invalid_permission() -> None:
    ledger = Ledger()
    assert add(ledger, "canadia", signer="admin@aclb").code == "permission_denied"
    assert get_validator_set(ledger.store, 3) == GENESIS_SET
