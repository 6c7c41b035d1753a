"""One exception base for consensus; every error carries a stable, machine-readable code."""

from __future__ import annotations


class ConsensusError(Exception):
    """Base of every consensus error. `code` is stable and part of the public contract."""

    code: str = "consensus_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class InvalidCommit(ConsensusError):
    """A commit certificate that does not prove 2f+1 precommits for the claimed block."""

    code = "invalid_commit"


class InvalidValidatorSet(ConsensusError):
    code = "invalid_validator_set"
