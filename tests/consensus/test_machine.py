"""Step tests: one event, the actions Algorithm 1 prescribes (lines cited per test).

Four validators (f = 1, quorum 3); at height 1 the proposer of round r is (1 + r) % 4,
so validator 1 proposes round 0, validator 2 round 1, validator 0 (`me`) round 3.
"""

from __future__ import annotations

from dataclasses import replace

from consensus import (
    NIL,
    Action,
    BroadcastProposal,
    BroadcastVote,
    ConsensusParams,
    ConsensusState,
    Context,
    Decide,
    Event,
    Evidence,
    PersistSignState,
    Proposal,
    ProposalReceived,
    ProposalValue,
    RequestProposal,
    ScheduleTimeout,
    SignState,
    Start,
    Step,
    TimeoutFired,
    ValidatorSet,
    Vote,
    VoteReceived,
    VoteType,
    check_proposal,
    new_state,
    sign_proposal,
    sign_vote,
    step,
    verify_commit,
)
from ledger.crypto import PrivateKey, sha256
from tests.consensus.sim import CHAIN_ID, make_keys, make_validator_set

KEYS = make_keys(4)
VSET = make_validator_set(KEYS)
PARAMS = ConsensusParams(100, 10, 50, 5, 60, 6, max_rounds_ahead=10)
A = sha256(b"block a")
B = sha256(b"block b")
PREVOTE, PRECOMMIT = VoteType.PREVOTE, VoteType.PRECOMMIT


def make_state(
    me: int = 0, sign_state: SignState | None = None, key: PrivateKey | None = None
) -> ConsensusState:
    context = Context(CHAIN_ID, key or KEYS[me], PARAMS, lambda _height: VSET)
    state, _ = step(new_state(context, 1, sign_state), Start())
    return state


def proposal(round_: int, value: bytes = A, valid_round: int = -1, height: int = 1) -> Proposal:
    proposer = (height + round_) % 4
    return sign_proposal(KEYS[proposer], CHAIN_ID, height, round_, value, valid_round)


def vote(index: int, vote_type: VoteType, round_: int, value: bytes, height: int = 1) -> Vote:
    return sign_vote(KEYS[index], CHAIN_ID, vote_type, height, round_, value)


def feed(state: ConsensusState, *events: Event) -> tuple[ConsensusState, list[Action]]:
    actions: list[Action] = []
    for event in events:
        state, out = step(state, event)
        actions.extend(out)
    return state, actions


def votes(vote_type: VoteType, round_: int, value: bytes, *indexes: int) -> list[Event]:
    return [VoteReceived(vote(i, vote_type, round_, value)) for i in indexes]


def sent_votes(actions: list[Action]) -> list[tuple[VoteType, int, bytes]]:
    return [
        (a.vote.vote_type, a.vote.round, a.vote.block_hash)
        for a in actions
        if isinstance(a, BroadcastVote)
    ]


def locked_on_a_in_round_0() -> ConsensusState:
    state, _ = feed(make_state(), ProposalReceived(proposal(0), True), *votes(PREVOTE, 0, A, 1, 2))
    assert (state.locked_value, state.locked_round, state.step) == (A, 0, Step.PRECOMMIT)
    return state


def test_basic() -> None:
    """Proposal, 2f+1 prevotes, 2f+1 precommits: one decision and the next height."""
    state, actions = feed(
        make_state(),
        ProposalReceived(proposal(0), True),
        *votes(PREVOTE, 0, A, 1, 2),
        *votes(PRECOMMIT, 0, A, 1, 2),
    )
    decide = next(a for a in actions if isinstance(a, Decide))
    assert (decide.height, decide.round, decide.block_hash) == (1, 0, A)
    verify_commit(VSET, CHAIN_ID, 1, A, decide.commit)
    assert (state.height, state.round, state.step) == (2, 0, Step.PROPOSE)


def test_start_non_proposer_schedules_propose_timeout() -> None:
    # line 10-13, 21: StartRound(0) schedules OnTimeoutPropose
    context = Context(CHAIN_ID, KEYS[0], PARAMS, lambda _height: VSET)
    _, actions = step(new_state(context, 1), Start())
    assert actions == (ScheduleTimeout(1, 0, Step.PROPOSE, 100),)


def test_start_proposer_requests_a_value() -> None:
    # line 14, 18: the proposer asks the node for getValue()
    context = Context(CHAIN_ID, KEYS[1], PARAMS, lambda _height: VSET)
    _, actions = step(new_state(context, 1), Start())
    assert actions == (ScheduleTimeout(1, 0, Step.PROPOSE, 100), RequestProposal(1, 0))


def test_second_start_changes_nothing() -> None:
    state = make_state()
    assert step(state, Start()) == (state, ())


def test_proposer_broadcasts_value_then_prevotes_it() -> None:
    # line 19: broadcast the proposal (persisted first), then line 22 on its own proposal
    state, actions = feed(make_state(me=1), ProposalValue(1, 0, A))
    kinds = [type(a) for a in actions]
    assert kinds == [PersistSignState, BroadcastProposal, PersistSignState, BroadcastVote]
    sent = actions[1]
    assert isinstance(sent, BroadcastProposal)
    assert sent.proposal == proposal(0, A)
    assert sent_votes(actions) == [(PREVOTE, 0, A)]
    assert state.step == Step.PREVOTE


def test_invalid_proposal_value_for_another_round() -> None:
    state = make_state(me=1)
    assert feed(state, ProposalValue(1, 1, A)) == (state, [])


def test_proposer_reproposes_valid_value() -> None:
    # line 15-16: validValue with its validRound, not a new value
    state, _ = feed(
        make_state(me=2), ProposalReceived(proposal(0), True), *votes(PREVOTE, 0, A, 0, 1)
    )
    assert (state.valid_value, state.valid_round) == (A, 0)
    state, actions = feed(state, TimeoutFired(1, 0, Step.PRECOMMIT))
    sent = [a.proposal for a in actions if isinstance(a, BroadcastProposal)]
    assert [(p.round, p.block_hash, p.valid_round) for p in sent] == [(1, A, 0)]
    assert not any(isinstance(a, RequestProposal) for a in actions)


def test_prevote_valid_proposal() -> None:
    # line 22-24: valid, not locked -> prevote id(v)
    state, actions = feed(make_state(), ProposalReceived(proposal(0), True))
    assert sent_votes(actions) == [(PREVOTE, 0, A)]
    assert state.step == Step.PREVOTE


def test_invalid_proposal_gets_nil_prevote() -> None:
    # line 25-26: not valid(v) -> prevote nil
    _, actions = feed(make_state(), ProposalReceived(proposal(0), False))
    assert sent_votes(actions) == [(PREVOTE, 0, NIL)]


def test_locked_on_other_value_prevotes_nil() -> None:
    # line 23, 26: locked on A, a fresh proposal for B -> nil
    state = locked_on_a_in_round_0()
    state, _ = feed(state, TimeoutFired(1, 0, Step.PRECOMMIT))
    _, actions = feed(state, ProposalReceived(proposal(1, B), True))
    assert sent_votes(actions) == [(PREVOTE, 1, NIL)]


def test_locked_on_same_value_prevotes_it() -> None:
    # line 23: lockedValue = v -> prevote id(v)
    state = locked_on_a_in_round_0()
    state, _ = feed(state, TimeoutFired(1, 0, Step.PRECOMMIT))
    _, actions = feed(state, ProposalReceived(proposal(1, A), True))
    assert sent_votes(actions) == [(PREVOTE, 1, A)]


def test_reproposal_with_polka_prevotes_it() -> None:
    # line 28-30: proposal with vr and 2f+1 prevotes for v in vr, locked no later than vr
    state, _ = feed(make_state(), TimeoutFired(1, 0, Step.PROPOSE), *votes(PREVOTE, 0, B, 1, 2, 3))
    state, _ = feed(state, TimeoutFired(1, 0, Step.PREVOTE), TimeoutFired(1, 0, Step.PRECOMMIT))
    assert (state.round, state.step) == (1, Step.PROPOSE)
    _, actions = feed(state, ProposalReceived(proposal(1, B, valid_round=0), True))
    assert sent_votes(actions) == [(PREVOTE, 1, B)]


def test_reproposal_without_polka_waits() -> None:
    # line 28: no 2f+1 prevotes in vr yet -> nothing
    state, _ = feed(make_state(), TimeoutFired(1, 0, Step.PROPOSE), *votes(PREVOTE, 0, B, 1, 2))
    state, _ = feed(state, TimeoutFired(1, 0, Step.PREVOTE), TimeoutFired(1, 0, Step.PRECOMMIT))
    state, actions = feed(state, ProposalReceived(proposal(1, B, valid_round=0), True))
    assert sent_votes(actions) == []
    assert state.step == Step.PROPOSE


def test_reproposal_locked_later_on_other_value_prevotes_nil() -> None:
    # line 29, 32: locked on A in round 1 > vr = 0 for B -> nil
    state, _ = feed(make_state(), TimeoutFired(1, 0, Step.PROPOSE), *votes(PREVOTE, 0, B, 1, 2, 3))
    state, _ = feed(state, TimeoutFired(1, 0, Step.PREVOTE), TimeoutFired(1, 0, Step.PRECOMMIT))
    state, _ = feed(state, ProposalReceived(proposal(1, A), True), *votes(PREVOTE, 1, A, 1, 2))
    assert (state.locked_value, state.locked_round) == (A, 1)
    state, _ = feed(state, TimeoutFired(1, 1, Step.PRECOMMIT))
    _, actions = feed(state, ProposalReceived(proposal(2, B, valid_round=0), True))
    assert sent_votes(actions) == [(PREVOTE, 2, NIL)]


def test_prevote_quorum_for_anything_schedules_prevote_timeout() -> None:
    # line 34-35: 2f+1 prevotes of any kind, the first time
    state, _ = feed(make_state(), ProposalReceived(proposal(0), True))
    state, actions = feed(state, *votes(PREVOTE, 0, B, 1), *votes(PREVOTE, 0, NIL, 2))
    assert actions == [ScheduleTimeout(1, 0, Step.PREVOTE, 50)]
    _, actions = feed(state, *votes(PREVOTE, 0, NIL, 3))
    assert not any(isinstance(a, ScheduleTimeout) for a in actions)


def test_polka_locks_and_precommits() -> None:
    # line 36-41: valid proposal and 2f+1 prevotes for it -> lock, precommit id(v)
    state, _ = feed(make_state(), ProposalReceived(proposal(0), True))
    state, actions = feed(state, *votes(PREVOTE, 0, A, 1, 2))
    assert [type(a) for a in actions][-2:] == [PersistSignState, BroadcastVote]
    assert sent_votes(actions) == [(PRECOMMIT, 0, A)]
    persisted = next(a.sign_state for a in actions if isinstance(a, PersistSignState))
    assert (persisted.locked_round, persisted.locked_value) == (0, A)
    assert (state.locked_value, state.locked_round, state.valid_value, state.valid_round) == (
        A,
        0,
        A,
        0,
    )


def test_polka_after_precommit_updates_valid_value_only() -> None:
    # line 36, 42-43: step = precommit -> validValue/validRound, no lock, no vote
    state, _ = feed(
        make_state(), TimeoutFired(1, 0, Step.PROPOSE), TimeoutFired(1, 0, Step.PREVOTE)
    )
    assert state.step == Step.PRECOMMIT
    state, actions = feed(
        state, ProposalReceived(proposal(0), True), *votes(PREVOTE, 0, A, 1, 2, 3)
    )
    assert sent_votes(actions) == []
    assert (state.valid_value, state.valid_round, state.locked_round) == (A, 0, -1)


def test_polka_for_invalid_proposal_does_not_lock() -> None:
    # line 36: while valid(v)
    state, _ = feed(
        make_state(), ProposalReceived(proposal(0), False), *votes(PREVOTE, 0, A, 1, 2, 3)
    )
    assert (state.locked_round, state.valid_round) == (-1, -1)


def test_nil_polka_precommits_nil() -> None:
    # line 44-46: 2f+1 prevotes for nil -> precommit nil
    state, _ = feed(make_state(), ProposalReceived(proposal(0), True))
    state, actions = feed(state, *votes(PREVOTE, 0, NIL, 1, 2, 3))
    assert sent_votes(actions) == [(PRECOMMIT, 0, NIL)]
    assert state.step == Step.PRECOMMIT


def test_precommit_quorum_for_anything_schedules_precommit_timeout() -> None:
    # line 47-48: 2f+1 precommits of any kind, the first time
    state, actions = feed(make_state(), *votes(PRECOMMIT, 0, A, 1), *votes(PRECOMMIT, 0, NIL, 2, 3))
    assert actions[-1] == ScheduleTimeout(1, 0, Step.PRECOMMIT, 60)
    _, actions = feed(state, *votes(PRECOMMIT, 0, B, 0))
    assert actions == []


def test_decide_needs_the_proposal() -> None:
    # line 49: 2f+1 precommits for v but no proposal for v -> no decision
    state, actions = feed(make_state(), *votes(PRECOMMIT, 0, A, 1, 2, 3))
    assert not any(isinstance(a, Decide) for a in actions)
    _, actions = feed(state, ProposalReceived(proposal(0), True))
    assert [a.block_hash for a in actions if isinstance(a, Decide)] == [A]


def test_decide_in_an_earlier_round() -> None:
    # line 49: any round r, not only the current one
    state, _ = feed(
        make_state(), ProposalReceived(proposal(0), True), *votes(PRECOMMIT, 0, A, 1, 2)
    )
    state, _ = feed(state, TimeoutFired(1, 0, Step.PROPOSE), TimeoutFired(1, 0, Step.PRECOMMIT))
    assert state.round == 1
    state, actions = feed(state, *votes(PRECOMMIT, 0, A, 3))
    decide = next(a for a in actions if isinstance(a, Decide))
    assert (decide.round, len(decide.commit.signatures)) == (0, 3)
    assert state.height == 2


def test_decide_resets_height_state() -> None:
    # line 52-55: next height, locks and valid value reset, StartRound(0)
    state = locked_on_a_in_round_0()
    state, actions = feed(state, *votes(PRECOMMIT, 0, A, 1, 2))
    assert (state.height, state.round, state.locked_round, state.valid_value) == (2, 0, -1, None)
    assert ScheduleTimeout(2, 0, Step.PROPOSE, 100) in actions


def test_invalid_decide_for_invalid_block() -> None:
    # line 50: valid(v) is required to decide
    _, actions = feed(
        make_state(), ProposalReceived(proposal(0), False), *votes(PRECOMMIT, 0, A, 1, 2, 3)
    )
    assert not any(isinstance(a, Decide) for a in actions)


def test_round_skip_on_f_plus_one_higher_round_messages() -> None:
    # line 56-57: f+1 messages from round 3 > round_p -> StartRound(3) (me proposes there)
    state, actions = feed(make_state(), *votes(PREVOTE, 3, NIL, 1))
    assert state.round == 0
    state, actions = feed(state, *votes(PRECOMMIT, 3, NIL, 2))
    assert (state.round, state.step) == (3, Step.PROPOSE)
    assert actions == [ScheduleTimeout(1, 3, Step.PROPOSE, 130), RequestProposal(1, 3)]


def test_timeout_propose_prevotes_nil() -> None:
    # line 57-61: OnTimeoutPropose in the propose step -> prevote nil
    state, actions = feed(make_state(), TimeoutFired(1, 0, Step.PROPOSE))
    assert sent_votes(actions) == [(PREVOTE, 0, NIL)]
    assert state.step == Step.PREVOTE


def test_timeout_prevote_precommits_nil() -> None:
    # line 62-65: OnTimeoutPrevote in the prevote step -> precommit nil
    state, _ = feed(make_state(), TimeoutFired(1, 0, Step.PROPOSE))
    state, actions = feed(state, TimeoutFired(1, 0, Step.PREVOTE))
    assert sent_votes(actions) == [(PRECOMMIT, 0, NIL)]
    assert state.step == Step.PRECOMMIT


def test_timeout_precommit_starts_next_round_with_longer_timeout() -> None:
    # line 66-68: OnTimeoutPrecommit -> StartRound(round + 1); timeouts grow per round
    state, actions = feed(make_state(), TimeoutFired(1, 0, Step.PRECOMMIT))
    assert (state.round, state.step) == (1, Step.PROPOSE)
    assert actions == [ScheduleTimeout(1, 1, Step.PROPOSE, 110)]


def test_invalid_stale_timeouts_are_dropped() -> None:
    # line 59, 63, 67: only the current height/round/step
    state = make_state()
    for event in (
        TimeoutFired(1, 0, Step.PREVOTE),
        TimeoutFired(1, 1, Step.PROPOSE),
        TimeoutFired(0, 0, Step.PRECOMMIT),
    ):
        state, actions = step(state, event)
        assert actions == ()
    assert (state.round, state.step, state.dropped["stale_timeout"]) == (0, Step.PROPOSE, 3)


def test_invalid_vote_for_other_height() -> None:
    state, actions = feed(make_state(), VoteReceived(vote(1, PREVOTE, 0, A, height=2)))
    assert actions == [] and state.dropped == {"wrong_height": 1}


def test_invalid_vote_from_non_validator() -> None:
    outsider = PrivateKey(sha256(b"outsider"))
    message = sign_vote(outsider, CHAIN_ID, PREVOTE, 1, 0, A)
    state, _ = feed(make_state(), VoteReceived(message))
    assert state.dropped == {"not_validator": 1}


def test_invalid_vote_signature() -> None:
    forged = replace(vote(1, PREVOTE, 0, A), signature=vote(2, PREVOTE, 0, A).signature)
    state, _ = feed(make_state(), VoteReceived(forged))
    assert state.dropped == {"bad_signature": 1}
    assert state.log.count_voters(0, PREVOTE) == 0


def test_invalid_vote_for_other_chain() -> None:
    other_chain = sign_vote(KEYS[1], "other-chain", PREVOTE, 1, 0, A)
    state, _ = feed(make_state(), VoteReceived(other_chain))
    assert state.dropped == {"bad_signature": 1}


def test_invalid_duplicate_vote() -> None:
    state, _ = feed(make_state(), *votes(PREVOTE, 0, A, 1, 1))
    assert state.dropped == {"duplicate": 1}
    assert state.log.count_votes(0, PREVOTE, A) == 1


def test_invalid_vote_from_far_round() -> None:
    state, _ = feed(make_state(), *votes(PREVOTE, 11, NIL, 1, 2))
    assert state.dropped == {"far_round": 2}
    assert state.round == 0


def test_invalid_proposal_from_wrong_proposer() -> None:
    wrong = sign_proposal(KEYS[2], CHAIN_ID, 1, 0, A, -1)
    state, actions = feed(make_state(), ProposalReceived(wrong, True))
    assert actions == [] and state.dropped == {"not_proposer": 1}


def test_invalid_proposal_signature() -> None:
    forged = replace(proposal(0), block_hash=B)
    state, actions = feed(make_state(), ProposalReceived(forged, True))
    assert actions == [] and state.dropped == {"bad_signature": 1}


def test_check_proposal_is_the_machines_own_check() -> None:
    # the node runs check_proposal before it touches a block: same reasons as on_proposal
    cases = [
        (proposal(0), None),
        (proposal(0, height=2), "wrong_height"),
        (proposal(11), "far_round"),
        (sign_proposal(KEYS[2], CHAIN_ID, 1, 0, A, -1), "not_proposer"),
        (replace(proposal(0), block_hash=B), "bad_signature"),
        (sign_proposal(KEYS[1], "other-chain", 1, 0, A, -1), "bad_signature"),
    ]
    for message, reason in cases:
        assert check_proposal(make_state(), message) == reason
        state, _ = feed(make_state(), ProposalReceived(message, True))
        assert state.dropped == ({reason: 1} if reason else {})


def test_invalid_proposal_for_other_height() -> None:
    state, _ = feed(make_state(), ProposalReceived(proposal(0, height=2), True))
    assert state.dropped == {"wrong_height": 1}


def test_double_vote_is_evidence() -> None:
    first, second = vote(1, PREVOTE, 0, A), vote(1, PREVOTE, 0, B)
    state, actions = feed(make_state(), VoteReceived(first), VoteReceived(second))
    assert actions == [Evidence(first, second)]
    # both count once each: an equivocator sits on both sides of its split
    assert state.log.count_votes(0, PREVOTE, A) == state.log.count_votes(0, PREVOTE, B) == 1
    # A third (and every further) conflicting vote is dropped without more evidence:
    # one record per validator and step, however often it equivocates.
    for value in (NIL, b"\x05" * 32, b"\x06" * 32):
        state, actions = feed(state, VoteReceived(vote(1, PREVOTE, 0, value)))
        assert actions == []
    assert state.dropped == {"equivocation": 3}


def test_equivocating_proposer_is_evidence() -> None:
    first, second = proposal(0, A), proposal(0, B)
    _, actions = feed(make_state(), ProposalReceived(first, True), ProposalReceived(second, True))
    assert Evidence(first, second) in actions
    assert sent_votes(actions) == [(PREVOTE, 0, A)]


def test_messages_before_start_are_logged_not_acted_on() -> None:
    context = Context(CHAIN_ID, KEYS[0], PARAMS, lambda _height: VSET)
    state, actions = feed(new_state(context, 1), ProposalReceived(proposal(0), True))
    assert actions == []
    _, actions = feed(state, Start())
    assert sent_votes(actions) == [(PREVOTE, 0, A)]


def test_non_validator_follows_and_decides_without_signing() -> None:
    state = make_state(key=PrivateKey(sha256(b"observer")))
    state, actions = feed(
        state,
        ProposalReceived(proposal(0), True),
        *votes(PREVOTE, 0, A, 1, 2, 3),
        *votes(PRECOMMIT, 0, A, 1, 2, 3),
    )
    assert sent_votes(actions) == []
    assert [a.block_hash for a in actions if isinstance(a, Decide)] == [A]


def test_validator_set_comes_from_the_provider_per_height() -> None:
    second = ValidatorSet(VSET.validators[1:] + VSET.validators[:1])
    sets = {1: VSET, 2: second}
    context = Context(CHAIN_ID, KEYS[0], PARAMS, lambda height: sets[height])
    state, _ = feed(
        new_state(context, 1),
        Start(),
        ProposalReceived(proposal(0), True),
        *votes(PRECOMMIT, 0, A, 1, 2, 3),
    )
    assert state.height == 2 and state.validators == second
    # in the rotated set, validator 0 is last: (2 + 0) % 4 = 2 -> validator 3 proposes
    assert state.validators.get_proposer(2, 0).public_key == KEYS[3].public_key


def test_restart_resends_identical_vote() -> None:
    _, actions = feed(make_state(), ProposalReceived(proposal(0), True))
    persisted = next(a.sign_state for a in actions if isinstance(a, PersistSignState))
    restored = SignState.decode(persisted.encode())
    _, again = feed(make_state(sign_state=restored), ProposalReceived(proposal(0), True))
    assert sent_votes(again) == sent_votes(actions)
    assert [a.vote for a in again if isinstance(a, BroadcastVote)] == [
        a.vote for a in actions if isinstance(a, BroadcastVote)
    ]
    assert not any(isinstance(a, PersistSignState) for a in again)


def test_restart_never_signs_a_conflicting_vote() -> None:
    # signed prevote A, restarted; the timeout would prevote nil: the stored A is re-sent
    _, actions = feed(make_state(), ProposalReceived(proposal(0), True))
    persisted = next(a.sign_state for a in actions if isinstance(a, PersistSignState))
    _, again = feed(make_state(sign_state=persisted), TimeoutFired(1, 0, Step.PROPOSE))
    assert sent_votes(again) == [(PREVOTE, 0, A)]


def test_restart_refuses_an_earlier_step_and_keeps_its_lock() -> None:
    state = locked_on_a_in_round_0()
    restarted = make_state(sign_state=state.sign_state)
    assert (restarted.round, restarted.locked_value, restarted.locked_round) == (0, A, 0)
    assert (restarted.valid_value, restarted.valid_round) == (A, 0)
    restarted, actions = feed(restarted, ProposalReceived(proposal(0), True))
    assert sent_votes(actions) == []
    restarted, _ = feed(restarted, TimeoutFired(1, 0, Step.PRECOMMIT))
    _, actions = feed(restarted, ProposalReceived(proposal(1, B), True))
    assert sent_votes(actions) == [(PREVOTE, 1, NIL)]
