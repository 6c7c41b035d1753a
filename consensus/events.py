"""Inputs to the state machine. The node turns peers, timers and its own block builder
into these and feeds them, one at a time, to `step`."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Proposal, Vote
from consensus.params import Step


@dataclass(frozen=True, slots=True)
class Start:
    """Begin the current height (Algorithm 1 line 10): sent once after construction."""


@dataclass(frozen=True, slots=True)
class ProposalValue:
    """The node's answer to `RequestProposal` (getValue(), line 18): the hash of the block
    it built. It may wait for transactions before answering; the propose timeout of the
    other validators bounds how long that can take."""

    height: int
    round: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A peer's proposal, with the node's verdict on the block it names (valid(v))."""

    proposal: Proposal
    valid: bool


@dataclass(frozen=True, slots=True)
class VoteReceived:
    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timeout scheduled by `ScheduleTimeout` has expired; stale ones are ignored."""

    height: int
    round: int
    step: Step


Event = Start | ProposalValue | ProposalReceived | VoteReceived | TimeoutFired
