from __future__ import annotations

import pytest

from consensus import NIL, SignState, Step, VoteType, sign_vote
from consensus.signstate import SignDecision, get_locked, get_sign_decision
from ledger.codec import pack
from ledger.errors import CodecError
from tests.consensus.sim import CHAIN_ID, make_keys

KEY = make_keys(1)[0]
A = bytes(32)


def make_sign_state(height: int = 3, round_: int = 1, step: Step = Step.PREVOTE) -> SignState:
    vote = sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, height, round_, A)
    return SignState(height, round_, step, vote.compute_root(CHAIN_ID), vote.encode(), 0, A)


def test_basic() -> None:
    state = make_sign_state()
    assert SignState.decode(state.encode()) == state
    assert state.get_message() == sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, 3, 1, A)
    assert get_locked(state, 3) == (0, A)


def test_decisions_follow_height_round_step_order() -> None:
    last = make_sign_state()
    assert get_sign_decision(None, 1, 0, Step.PROPOSE) is SignDecision.SIGN
    assert get_sign_decision(last, 3, 1, Step.PRECOMMIT) is SignDecision.SIGN
    assert get_sign_decision(last, 3, 2, Step.PROPOSE) is SignDecision.SIGN
    assert get_sign_decision(last, 4, 0, Step.PROPOSE) is SignDecision.SIGN
    assert get_sign_decision(last, 3, 1, Step.PREVOTE) is SignDecision.RESEND
    assert get_sign_decision(last, 3, 1, Step.PROPOSE) is SignDecision.REFUSE
    assert get_sign_decision(last, 3, 0, Step.PRECOMMIT) is SignDecision.REFUSE
    assert get_sign_decision(last, 2, 9, Step.PRECOMMIT) is SignDecision.REFUSE


def test_lock_of_another_height_is_not_kept() -> None:
    assert get_locked(make_sign_state(), 4) == (-1, None)
    unlocked = SignState(3, 0, Step.PREVOTE, bytes(32), make_sign_state().message, -1, NIL)
    assert get_locked(unlocked, 3) == (-1, None)


def test_invalid_message_that_is_not_the_step_kind() -> None:
    obj = make_sign_state(step=Step.PROPOSE).to_obj()
    with pytest.raises(CodecError):
        SignState.decode(pack(obj))


def test_invalid_step() -> None:
    obj = make_sign_state().to_obj()
    obj[3] = 4
    with pytest.raises(CodecError):
        SignState.decode(pack(obj))
