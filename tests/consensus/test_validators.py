from __future__ import annotations

import pytest

from consensus import InvalidValidatorSet, Validator, ValidatorSet
from tests.consensus.sim import make_keys

KEYS = [key.public_key for key in make_keys(7)]


def test_basic() -> None:
    validators = ValidatorSet.of([(f"bank{i}", key) for i, key in enumerate(KEYS)])
    assert (validators.size, validators.quorum, validators.one_correct) == (7, 5, 3)
    assert validators.get_index(KEYS[3]) == 3
    assert validators.get_index(b"\0" * 32) is None
    proposers = [validators.get_proposer(h, r).name for h, r in [(1, 0), (1, 1), (6, 0), (5, 2)]]
    assert proposers == ["bank1", "bank2", "bank6", "bank0"]
    assert len(validators.hash) == 32


def test_invalid_empty_set() -> None:
    with pytest.raises(InvalidValidatorSet):
        ValidatorSet(())


def test_invalid_key_size() -> None:
    with pytest.raises(InvalidValidatorSet):
        ValidatorSet((Validator("bank0", b"short"),))


def test_invalid_duplicate_key() -> None:
    with pytest.raises(InvalidValidatorSet):
        ValidatorSet.of([("bank0", KEYS[0]), ("bank1", KEYS[0])])
