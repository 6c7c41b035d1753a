"""Outputs of the state machine. The node runs them in order: persist, send, apply."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Proposal, SignedMessage, Vote
from consensus.params import Step
from consensus.signstate import SignState
from ledger.commit import Commit


@dataclass(frozen=True, slots=True)
class PersistSignState:
    """Write durably (fsync) before running the broadcast that follows it."""

    sign_state: SignState


@dataclass(frozen=True, slots=True)
class BroadcastProposal:
    """Send to every validator together with the block body named by its hash."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class BroadcastVote:
    vote: Vote


@dataclass(frozen=True, slots=True)
class RequestProposal:
    """This validator proposes at (height, round): build a block and answer with a
    `ProposalValue` event."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Feed `TimeoutFired(height, round, step)` back after `duration_ms`."""

    height: int
    round: int
    step: Step
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    """`block_hash` is final at `height`: apply the block and store `commit` with it."""

    height: int
    round: int
    block_hash: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two validly signed, conflicting messages from one validator for one step."""

    first: SignedMessage
    second: SignedMessage


Action = (
    PersistSignState
    | BroadcastProposal
    | BroadcastVote
    | RequestProposal
    | ScheduleTimeout
    | Decide
    | Evidence
)
