"""One exception base for consensus; every error carries a stable, machine-readable code."""

from __future__ import annotations

from ledger.errors import CodedError


class ConsensusError(CodedError):
    """Base of every consensus error. `code` is stable and part of the public contract."""

    code = "consensus_error"


class InvalidCommit(ConsensusError):
    """A commit certificate that does not prove 2f+1 precommits for the claimed block."""

    code = "invalid_commit"


class InvalidValidatorSet(ConsensusError):
    code = "invalid_validator_set"
