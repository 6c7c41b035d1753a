"""What consensus needs from the ledger and nothing of the transaction model: heights,
rounds, commit certificates (2f+1 precommit signatures for a block hash) and the hash of
an ordered validator set. `consensus/` imports only this module, the codec and crypto.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.codec import (
    expect_bytes,
    expect_int,
    expect_list,
    expect_list_max,
    expect_version,
    pack,
    unpack,
)
from ledger.constants import HASH_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ledger.crypto import sha256

# Version 1 of the commit format (blocks moved to version 2 when their tx root came to
# cover signatures; commits did not change).
COMMIT_VERSION = 1
MAX_COMMIT_SIGNATURES = 1024
MAX_ROUND = 2**32 - 1
MAX_HEIGHT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class CommitSig:
    """One validator's precommit signature: `validator` is its 32-byte node public key."""

    validator: bytes
    signature: bytes

    def to_obj(self) -> list[Any]:
        return [self.validator, self.signature]

    @staticmethod
    def from_obj(obj: Any) -> CommitSig:
        fields = expect_list(obj, 2, "commit signature")
        return CommitSig(
            validator=expect_bytes(fields[0], PUBLIC_KEY_SIZE, "commit validator"),
            signature=expect_bytes(fields[1], SIGNATURE_SIZE, "commit signature"),
        )


@dataclass(frozen=True, slots=True)
class Commit:
    """The certificate that decided `block_hash` at (height, round): 2f+1 precommits.

    Which signatures count (known validators, no duplicates, quorum) is consensus's check;
    this container only guarantees shape and a canonical encoding.
    """

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSig, ...]

    def to_obj(self) -> list[Any]:
        sigs = [sig.to_obj() for sig in self.signatures]
        return [COMMIT_VERSION, self.height, self.round, self.block_hash, sigs]

    def encode(self) -> bytes:
        return pack(self.to_obj())

    @property
    def hash(self) -> bytes:
        return sha256(self.encode())

    @staticmethod
    def from_obj(obj: Any) -> Commit:
        fields = expect_list(obj, 5, "commit")
        expect_version(fields[0], COMMIT_VERSION, "commit")
        sigs = expect_list_max(fields[4], MAX_COMMIT_SIGNATURES, "commit signatures")
        return Commit(
            height=expect_int(fields[1], 0, MAX_HEIGHT, "commit height"),
            round=expect_int(fields[2], 0, MAX_ROUND, "commit round"),
            block_hash=expect_bytes(fields[3], HASH_SIZE, "commit block hash"),
            signatures=tuple(CommitSig.from_obj(sig) for sig in sigs),
        )

    @staticmethod
    def decode(data: bytes) -> Commit:
        return Commit.from_obj(unpack(data))


def compute_validator_set_hash(validators: Sequence[tuple[str, bytes]]) -> bytes:
    """Hash of the ordered (bank code, node public key) list; order matters (rotation)."""
    return sha256(pack([COMMIT_VERSION, [[bank, key] for bank, key in validators]]))
