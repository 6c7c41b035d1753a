"""The state of one validator's consensus instance: Algorithm 1's variables plus the
message log of the current height. Immutable: `step` returns a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consensus.messages import Proposal, Vote, VoteType
from consensus.params import ConsensusParams, Step
from consensus.signstate import SignState
from consensus.validators import ValidatorProvider, ValidatorSet
from ledger.crypto import PrivateKey


@dataclass(frozen=True, slots=True)
class Context:
    """What a validator is constructed with; constant across heights."""

    chain_id: str
    key: PrivateKey | None
    params: ConsensusParams
    validators: ValidatorProvider


@dataclass(frozen=True, slots=True)
class ReceivedProposal:
    proposal: Proposal
    valid: bool


MAX_MESSAGES_PER_STEP = 2
"""A validator's messages kept per step: the first and one conflicting one. Counting an
equivocator on both sides of its split keeps correct validators that saw different
halves able to decide; the bound keeps a flood of values from growing the log."""


@dataclass(frozen=True, slots=True)
class MessageLog:
    """Proposals and votes of one height that passed every check."""

    proposals: Mapping[int, tuple[ReceivedProposal, ...]] = field(default_factory=dict)
    votes: Mapping[tuple[int, VoteType], Mapping[int, tuple[Vote, ...]]] = field(
        default_factory=dict
    )

    def get_proposals(self, round_: int) -> tuple[ReceivedProposal, ...]:
        return self.proposals.get(round_, ())

    def get_voters(self, round_: int, vote_type: VoteType) -> Mapping[int, tuple[Vote, ...]]:
        return self.votes.get((round_, vote_type), {})

    def get_vote(self, round_: int, vote_type: VoteType, index: int, value: bytes) -> Vote | None:
        votes = self.get_voters(round_, vote_type).get(index, ())
        return next((vote for vote in votes if vote.block_hash == value), None)

    def count_votes(self, round_: int, vote_type: VoteType, value: bytes) -> int:
        """Validators that voted `value` (an equivocator counts on each side once)."""
        voters = self.get_voters(round_, vote_type).values()
        return sum(1 for votes in voters if any(vote.block_hash == value for vote in votes))

    def count_voters(self, round_: int, vote_type: VoteType) -> int:
        return len(self.get_voters(round_, vote_type))

    def count_senders(self, round_: int, proposer_index: int) -> int:
        """Distinct validators with any message in a round (line 56)."""
        senders = set(self.get_voters(round_, VoteType.PREVOTE))
        senders.update(self.get_voters(round_, VoteType.PRECOMMIT))
        if round_ in self.proposals:
            senders.add(proposer_index)
        return len(senders)

    def get_rounds(self) -> set[int]:
        return set(self.proposals) | {round_ for round_, _ in self.votes}

    def with_vote(self, index: int, vote: Vote) -> MessageLog:
        key = (vote.round, vote.vote_type)
        voters = self.get_voters(*key)
        votes = {**self.votes, key: {**voters, index: (*voters.get(index, ()), vote)}}
        return MessageLog(self.proposals, votes)

    def with_proposal(self, proposal: Proposal, valid: bool) -> MessageLog:
        received = (*self.get_proposals(proposal.round), ReceivedProposal(proposal, valid))
        return MessageLog({**self.proposals, proposal.round: received}, self.votes)


@dataclass(frozen=True, slots=True)
class RoundFlags:
    """Algorithm 1's "for the first time" guards; reset when a round starts."""

    prevote_timeout_scheduled: bool = False
    precommit_timeout_scheduled: bool = False
    valid_value_updated: bool = False


@dataclass(frozen=True, slots=True)
class ConsensusState:
    context: Context
    height: int
    round: int
    step: Step
    validators: ValidatorSet
    my_index: int | None = None
    locked_round: int = -1
    locked_value: bytes | None = None
    valid_round: int = -1
    valid_value: bytes | None = None
    log: MessageLog = field(default_factory=MessageLog)
    flags: RoundFlags = field(default_factory=RoundFlags)
    sign_state: SignState | None = None
    started: bool = False
    dropped: Mapping[str, int] = field(default_factory=dict)

    def get_first_proposal(self, round_: int) -> ReceivedProposal | None:
        """The proposal the propose step acts on (lines 22, 28): the first received."""
        proposals = self.log.get_proposals(round_)
        return proposals[0] if proposals else None
