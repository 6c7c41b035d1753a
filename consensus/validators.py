"""The ordered, equal-power validator set of one height and its proposer rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.errors import InvalidValidatorSet
from consensus.quorum import compute_max_faulty, compute_quorum
from ledger.commit import compute_validator_set_hash
from ledger.constants import PUBLIC_KEY_SIZE


@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """Validators in ledger order; the order fixes the proposer rotation."""

    validators: tuple[Validator, ...]
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a set needs at least one member
        if not self.validators:
            raise InvalidValidatorSet("a validator set is never empty")
        # every key is an Ed25519 public key
        if any(len(v.public_key) != PUBLIC_KEY_SIZE for v in self.validators):
            raise InvalidValidatorSet("a validator key is 32 bytes")
        index = {v.public_key: i for i, v in enumerate(self.validators)}
        # one key, one vote
        if len(index) != len(self.validators):
            raise InvalidValidatorSet("duplicate validator key")
        object.__setattr__(self, "_index", index)

    @staticmethod
    def of(entries: list[tuple[str, bytes]]) -> ValidatorSet:
        return ValidatorSet(tuple(Validator(name, key) for name, key in entries))

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def quorum(self) -> int:
        """2f+1: precommits that decide, prevotes that lock."""
        return compute_quorum(self.size)

    @property
    def one_correct(self) -> int:
        """f+1: senders of a higher round that make a validator skip to it."""
        return compute_max_faulty(self.size) + 1

    @property
    def hash(self) -> bytes:
        return compute_validator_set_hash([(v.name, v.public_key) for v in self.validators])

    def get_index(self, public_key: bytes) -> int | None:
        return self._index.get(public_key)

    def get_proposer(self, height: int, round_: int) -> Validator:
        """Rotation by height and round: `(height + round) % n`."""
        return self.validators[(height + round_) % self.size]


ValidatorProvider = Callable[[int], ValidatorSet]
"""The set for a height, from the ledger: a change committed at h applies from h + 2."""
