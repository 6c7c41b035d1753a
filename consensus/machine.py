"""Tendermint's Algorithm 1 ("The latest gossip on BFT consensus", arXiv 1807.04938) as a
pure state machine: `step(state, event) -> (state, actions)`.

Each rule cites the line of the paper it implements. Messages are checked (height,
validator, signature, duplicates) before they enter the log; after every event the
`upon` rules run until none applies. Values are block hashes; `NIL` is the nil vote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from consensus.actions import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    Decide,
    Evidence,
    PersistSignState,
    RequestProposal,
    ScheduleTimeout,
)
from consensus.events import (
    Event,
    ProposalReceived,
    ProposalValue,
    Start,
    TimeoutFired,
    VoteReceived,
)
from consensus.messages import (
    NIL,
    Proposal,
    SignedMessage,
    Vote,
    VoteType,
    sign_proposal,
    sign_vote,
)
from consensus.params import Step
from consensus.signstate import SignDecision, SignState, get_locked, get_sign_decision
from consensus.state import (
    MAX_MESSAGES_PER_STEP,
    ConsensusState,
    Context,
    MessageLog,
    RoundFlags,
)
from ledger.commit import Commit, CommitSig
from ledger.crypto import PrivateKey

Actions = list[Action]
Rule = Callable[[ConsensusState, Actions], ConsensusState | None]


def new_state(context: Context, height: int, sign_state: SignState | None = None) -> ConsensusState:
    """A validator at `height`, restored from its persisted SignState after a restart:
    it resumes at the round it last signed in, with the lock it held then. The lock is
    also its valid value (line 36 sets both), so it can re-propose the value it is
    locked on and locked validators can still agree (validRound >= lockedRound)."""
    validators = context.validators(height)
    key = context.key
    my_index = None if key is None else validators.get_index(key.public_key)
    state = ConsensusState(context, height, 0, Step.PROPOSE, validators, my_index)
    if sign_state is None or sign_state.height != height:
        return replace(state, sign_state=sign_state)
    locked_round, locked_value = get_locked(sign_state, height)
    return replace(
        state,
        round=sign_state.round,
        locked_round=locked_round,
        locked_value=locked_value,
        valid_round=locked_round,
        valid_value=locked_value,
        sign_state=sign_state,
    )


def step(state: ConsensusState, event: Event) -> tuple[ConsensusState, tuple[Action, ...]]:
    """Apply one event; return the new state and the actions to run in order."""
    out: Actions = []
    match event:
        case Start():
            state = on_start(state, out)
        case ProposalValue():
            state = on_proposal_value(state, event, out)
        case ProposalReceived():
            state = on_proposal(state, event, out)
        case VoteReceived():
            state = on_vote(state, event.vote, out)
        case TimeoutFired():
            state = on_timeout(state, event, out)
    if state.started:
        state = process_rules(state, out)
    return state, tuple(out)


# Events


def on_start(state: ConsensusState, out: Actions) -> ConsensusState:
    # a second Start changes nothing
    if state.started:
        return state
    # line 10: upon start do StartRound(0) (or the restored round after a restart)
    return start_round(replace(state, started=True), state.round, out)


def on_proposal_value(state: ConsensusState, event: ProposalValue, out: Actions) -> ConsensusState:
    # the answer is for the round still waiting for it
    if (event.height, event.round) != (state.height, state.round) or state.step != Step.PROPOSE:
        return state
    # only the round's proposer proposes, once
    if not is_my_turn(state) or state.log.get_proposals(state.round):
        return state
    # line 19: broadcast <PROPOSAL, h, round, getValue(), validRound = -1>
    return propose(state, event.block_hash, -1, out)


def check_proposal(state: ConsensusState, proposal: Proposal) -> str | None:
    """Why `proposal` is dropped (a stable reason), or None if its height, round, proposer
    and signature pass. Shared with the node, which runs it before it decodes, judges or
    executes the proposal's block: nothing from a peer is executed before its sender and
    signature are checked."""
    # only the current height is decided here
    if proposal.height != state.height:
        return "wrong_height"
    # a bounded window of future rounds keeps the log bounded
    if proposal.round > state.round + state.context.params.max_rounds_ahead:
        return "far_round"
    # only proposer(h, round) proposes in a round
    if (
        proposal.proposer
        != state.validators.get_proposer(proposal.height, proposal.round).public_key
    ):
        return "not_proposer"
    # the proposer really signed it
    if not proposal.is_signed_by_proposer(state.context.chain_id):
        return "bad_signature"
    return None


def on_proposal(state: ConsensusState, event: ProposalReceived, out: Actions) -> ConsensusState:
    proposal = event.proposal
    # height, round window, proposer and signature
    reason = check_proposal(state, proposal)
    if reason is not None:
        return count_drop(state, reason)
    known = [received.proposal for received in state.log.get_proposals(proposal.round)]
    # the same proposal again
    if any(is_same_proposal(other, proposal) for other in known):
        return count_drop(state, "duplicate")
    # a bounded number of them is kept (and reported: evidence once per step)
    if len(known) >= MAX_MESSAGES_PER_STEP:
        return count_drop(state, "equivocation")
    # a second, different proposal for the round is evidence
    if known:
        out.append(Evidence(known[0], proposal))
    return replace(state, log=state.log.with_proposal(proposal, event.valid))


def on_vote(state: ConsensusState, vote: Vote, out: Actions) -> ConsensusState:
    # only the current height is decided here
    if vote.height != state.height:
        return count_drop(state, "wrong_height")
    # a bounded window of future rounds keeps the log bounded
    if vote.round > state.round + state.context.params.max_rounds_ahead:
        return count_drop(state, "far_round")
    index = state.validators.get_index(vote.validator)
    # only validators of this height vote
    if index is None:
        return count_drop(state, "not_validator")
    known = state.log.get_voters(vote.round, vote.vote_type).get(index, ())
    # the same vote again
    if any(other.block_hash == vote.block_hash for other in known):
        return count_drop(state, "duplicate")
    # a bounded number of them is kept (and reported: evidence once per step); checked
    # before the signature, so a flood for a full step costs no verification
    if len(known) >= MAX_MESSAGES_PER_STEP:
        return count_drop(state, "equivocation")
    # the validator really signed it
    if not vote.is_signed_by_validator(state.context.chain_id):
        return count_drop(state, "bad_signature")
    # a second, different vote for the same step is evidence
    if known:
        out.append(Evidence(known[0], vote))
    return replace(state, log=state.log.with_vote(index, vote))


def on_timeout(state: ConsensusState, event: TimeoutFired, out: Actions) -> ConsensusState:
    current = (event.height, event.round) == (state.height, state.round)
    # line 59: OnTimeoutPropose while still in the propose step -> prevote nil
    if current and event.step == Step.PROPOSE and state.step == Step.PROPOSE:
        return cast_vote(state, VoteType.PREVOTE, NIL, out)
    # line 63: OnTimeoutPrevote while still in the prevote step -> precommit nil
    if current and event.step == Step.PREVOTE and state.step == Step.PREVOTE:
        return cast_vote(state, VoteType.PRECOMMIT, NIL, out)
    # line 67: OnTimeoutPrecommit -> StartRound(round + 1)
    if current and event.step == Step.PRECOMMIT:
        return start_round(state, state.round + 1, out)
    return count_drop(state, "stale_timeout")


# Rules that fire on the log ("upon ..."), tried in order until none applies.


def process_rules(state: ConsensusState, out: Actions) -> ConsensusState:
    fired: ConsensusState | None = state
    while fired is not None:
        state = fired
        fired = apply_first_rule(state, out)
    return state


def apply_first_rule(state: ConsensusState, out: Actions) -> ConsensusState | None:
    for rule in RULES:
        fired = rule(state, out)
        if fired is not None:
            return fired
    return None


def rule_decide(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 49: a proposal for v in some round r and 2f+1 precommits for v in r."""
    for round_, proposals in sorted(state.log.proposals.items()):
        for received in proposals:
            value = received.proposal.block_hash
            # line 50: decide only a value the node found valid
            if not received.valid:
                continue
            if state.log.count_votes(round_, VoteType.PRECOMMIT, value) >= state.validators.quorum:
                out.append(Decide(state.height, round_, value, get_commit(state, round_, value)))
                # line 52-55: next height, reset locks and log, StartRound(0)
                return start_round(enter_height(state, state.height + 1), 0, out)
    return None


def rule_skip_round(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 56: f+1 validators sent messages for a higher round -> StartRound(round)."""
    higher = [round_ for round_ in state.log.get_rounds() if round_ > state.round]
    for round_ in sorted(higher, reverse=True):
        proposer_index = (state.height + round_) % state.validators.size
        if state.log.count_senders(round_, proposer_index) >= state.validators.one_correct:
            return start_round(state, round_, out)
    return None


def rule_prevote_proposal(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 22: a proposal with validRound -1 while in the propose step."""
    received = state.get_first_proposal(state.round)
    if state.step != Step.PROPOSE or received is None or received.proposal.valid_round != -1:
        return None
    value = received.proposal.block_hash
    # line 23: valid and not locked on another value -> prevote v (line 24), else nil (26)
    acceptable = state.locked_round == -1 or state.locked_value == value
    return cast_vote(state, VoteType.PREVOTE, value if received.valid and acceptable else NIL, out)


def rule_prevote_reproposal(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 28: a re-proposal with validRound vr < round and 2f+1 prevotes for v in vr."""
    received = state.get_first_proposal(state.round)
    if state.step != Step.PROPOSE or received is None:
        return None
    proposal = received.proposal
    if not 0 <= proposal.valid_round < state.round:
        return None
    prevotes = state.log.count_votes(proposal.valid_round, VoteType.PREVOTE, proposal.block_hash)
    if prevotes < state.validators.quorum:
        return None
    # line 29: valid and locked no later than vr, or on v -> prevote v (30), else nil (32)
    acceptable = state.locked_round <= proposal.valid_round or (
        state.locked_value == proposal.block_hash
    )
    value = proposal.block_hash if received.valid and acceptable else NIL
    return cast_vote(state, VoteType.PREVOTE, value, out)


def rule_lock(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 36: a valid proposal and 2f+1 prevotes for it in this round, the first time."""
    if state.step < Step.PREVOTE or state.flags.valid_value_updated:
        return None
    value = get_polka_value(state)
    if value is None:
        return None
    flags = replace(state.flags, valid_value_updated=True)
    # line 42-43: validValue, validRound
    state = replace(state, flags=flags, valid_value=value, valid_round=state.round)
    if state.step != Step.PREVOTE:
        return state
    # line 37-41: lock on v, then precommit v (the lock is persisted with the precommit)
    locked = replace(state, locked_value=value, locked_round=state.round)
    return cast_vote(locked, VoteType.PRECOMMIT, value, out)


def get_polka_value(state: ConsensusState) -> bytes | None:
    """A valid proposal of this round with 2f+1 prevotes for its value, if any."""
    for received in state.log.get_proposals(state.round):
        value = received.proposal.block_hash
        prevotes = state.log.count_votes(state.round, VoteType.PREVOTE, value)
        if received.valid and prevotes >= state.validators.quorum:
            return value
    return None


def rule_precommit_nil(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 44: 2f+1 prevotes for nil in this round while in the prevote step."""
    if state.step != Step.PREVOTE:
        return None
    if state.log.count_votes(state.round, VoteType.PREVOTE, NIL) < state.validators.quorum:
        return None
    return cast_vote(state, VoteType.PRECOMMIT, NIL, out)


def rule_prevote_timeout(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 34: 2f+1 prevotes for anything in this round, the first time."""
    if state.step != Step.PREVOTE or state.flags.prevote_timeout_scheduled:
        return None
    if state.log.count_voters(state.round, VoteType.PREVOTE) < state.validators.quorum:
        return None
    schedule_timeout(state, Step.PREVOTE, out)
    return replace(state, flags=replace(state.flags, prevote_timeout_scheduled=True))


def rule_precommit_timeout(state: ConsensusState, out: Actions) -> ConsensusState | None:
    """line 47: 2f+1 precommits for anything in this round, the first time."""
    if state.flags.precommit_timeout_scheduled:
        return None
    if state.log.count_voters(state.round, VoteType.PRECOMMIT) < state.validators.quorum:
        return None
    schedule_timeout(state, Step.PRECOMMIT, out)
    return replace(state, flags=replace(state.flags, precommit_timeout_scheduled=True))


RULES: tuple[Rule, ...] = (
    rule_decide,
    rule_skip_round,
    rule_prevote_proposal,
    rule_prevote_reproposal,
    rule_lock,
    rule_precommit_nil,
    rule_prevote_timeout,
    rule_precommit_timeout,
)


# Round and height changes


def start_round(state: ConsensusState, round_: int, out: Actions) -> ConsensusState:
    """line 11: StartRound(round)."""
    # line 12-13: round_p <- round, step_p <- propose
    state = replace(state, round=round_, step=Step.PROPOSE, flags=RoundFlags())
    # line 21: schedule OnTimeoutPropose; the proposer too, so a block that is never
    # built costs one timeout, not a stuck round
    schedule_timeout(state, Step.PROPOSE, out)
    if not is_my_turn(state):
        return state
    # line 15-16: re-propose the valid value with its valid round
    if state.valid_value is not None:
        return propose(state, state.valid_value, state.valid_round, out)
    # line 18: getValue() is the node's: it answers with a ProposalValue event
    out.append(RequestProposal(state.height, round_))
    return state


def enter_height(state: ConsensusState, height: int) -> ConsensusState:
    """line 52-54: next height; locks, valid value and message log back to initial."""
    validators = state.context.validators(height)
    key = state.context.key
    return replace(
        state,
        height=height,
        round=0,
        step=Step.PROPOSE,
        validators=validators,
        my_index=None if key is None else validators.get_index(key.public_key),
        locked_round=-1,
        locked_value=None,
        valid_round=-1,
        valid_value=None,
        log=MessageLog(),
        flags=RoundFlags(),
    )


def schedule_timeout(state: ConsensusState, step_: Step, out: Actions) -> None:
    duration = state.context.params.compute_timeout(step_, state.round)
    out.append(ScheduleTimeout(state.height, state.round, step_, duration))


def is_my_turn(state: ConsensusState) -> bool:
    proposer = (state.height + state.round) % state.validators.size
    return state.my_index is not None and state.my_index == proposer


# Signing: persist first, then send; never two different messages for one step.


def propose(state: ConsensusState, value: bytes, valid_round: int, out: Actions) -> ConsensusState:
    """line 19: broadcast <PROPOSAL, h, round, v, validRound>; it is also received here."""
    chain_id = state.context.chain_id

    def make(key: PrivateKey) -> SignedMessage:
        return sign_proposal(key, chain_id, state.height, state.round, value, valid_round)

    state, message = sign_message(state, Step.PROPOSE, make, out)
    if not isinstance(message, Proposal):
        return state
    out.append(BroadcastProposal(message))
    return replace(state, log=state.log.with_proposal(message, True))


def cast_vote(
    state: ConsensusState, vote_type: VoteType, value: bytes, out: Actions
) -> ConsensusState:
    """Broadcast a prevote or precommit (also received here), then enter the next step."""
    next_step = Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT
    chain_id = state.context.chain_id

    def make(key: PrivateKey) -> SignedMessage:
        return sign_vote(key, chain_id, vote_type, state.height, state.round, value)

    state, message = sign_message(state, next_step, make, out)
    if isinstance(message, Vote) and state.my_index is not None:
        out.append(BroadcastVote(message))
        state = replace(state, log=state.log.with_vote(state.my_index, message))
    return replace(state, step=next_step)


def sign_message(
    state: ConsensusState,
    step_: Step,
    make: Callable[[PrivateKey], SignedMessage],
    out: Actions,
) -> tuple[ConsensusState, SignedMessage | None]:
    """Sign a later step after persisting it; re-send the stored message for the step
    signed last (after a restart); refuse an earlier step."""
    key = state.context.key
    # only a validator of this height signs
    if key is None or state.my_index is None:
        return state, None
    decision = get_sign_decision(state.sign_state, state.height, state.round, step_)
    # never go back to an earlier step
    if decision is SignDecision.REFUSE:
        return state, None
    # the step signed last: the stored message again, identical, never a new one
    if decision is SignDecision.RESEND and state.sign_state is not None:
        return state, state.sign_state.get_message()
    message = make(key)
    sign_state = SignState(
        height=state.height,
        round=state.round,
        step=step_,
        root=message.compute_root(state.context.chain_id),
        message=message.encode(),
        locked_round=state.locked_round,
        locked_value=state.locked_value or NIL,
    )
    out.append(PersistSignState(sign_state))
    return replace(state, sign_state=sign_state), message


def get_commit(state: ConsensusState, round_: int, value: bytes) -> Commit:
    """The certificate: every precommit for v in r we hold, in validator order."""
    indexes = sorted(state.log.get_voters(round_, VoteType.PRECOMMIT))
    votes = [state.log.get_vote(round_, VoteType.PRECOMMIT, index, value) for index in indexes]
    signatures = tuple(CommitSig(v.validator, v.signature) for v in votes if v is not None)
    return Commit(state.height, round_, value, signatures)


def is_same_proposal(a: Proposal, b: Proposal) -> bool:
    """Same value and valid round: a copy, even if re-signed with another nonce."""
    return (a.block_hash, a.valid_round) == (b.block_hash, b.valid_round)


def count_drop(state: ConsensusState, reason: str) -> ConsensusState:
    """Messages dropped by reason, for metrics and tests."""
    return replace(state, dropped={**state.dropped, reason: state.dropped.get(reason, 0) + 1})
