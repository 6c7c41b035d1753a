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


@dataclass(frozen=True, slots=True)
class MessageLog:
    """Proposals and votes of one height that passed every check, at most one per
    validator and step (the first; a conflicting second one is evidence)."""

    proposals: Mapping[int, ReceivedProposal] = field(default_factory=dict)
    votes: Mapping[tuple[int, VoteType], Mapping[int, Vote]] = field(default_factory=dict)

    def get_votes(self, round_: int, vote_type: VoteType) -> Mapping[int, Vote]:
        return self.votes.get((round_, vote_type), {})

    def count_votes(self, round_: int, vote_type: VoteType, block_hash: bytes) -> int:
        votes = self.get_votes(round_, vote_type).values()
        return sum(1 for vote in votes if vote.block_hash == block_hash)

    def count_senders(self, round_: int, proposer_index: int) -> int:
        """Distinct validators with any message in a round (line 56)."""
        senders = set(self.get_votes(round_, VoteType.PREVOTE))
        senders.update(self.get_votes(round_, VoteType.PRECOMMIT))
        if round_ in self.proposals:
            senders.add(proposer_index)
        return len(senders)

    def get_rounds(self) -> set[int]:
        return set(self.proposals) | {round_ for round_, _ in self.votes}

    def with_vote(self, index: int, vote: Vote) -> MessageLog:
        key = (vote.round, vote.vote_type)
        votes = {**self.votes, key: {**self.get_votes(*key), index: vote}}
        return MessageLog(self.proposals, votes)

    def with_proposal(self, proposal: Proposal, valid: bool) -> MessageLog:
        received = ReceivedProposal(proposal, valid)
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

    def get_proposal(self, round_: int) -> ReceivedProposal | None:
        return self.log.proposals.get(round_)
