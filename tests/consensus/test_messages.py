from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import NIL, Proposal, Vote, VoteType, sign_proposal, sign_vote
from consensus.messages import compute_proposal_root, compute_vote_root
from ledger.codec import pack, unpack
from ledger.constants import DOMAIN_PROPOSAL, DOMAIN_VOTE
from ledger.crypto import signing_root
from ledger.errors import CodecError
from tests.consensus.sim import CHAIN_ID, make_keys

KEY = make_keys(1)[0]
A = bytes(range(32))


def test_basic() -> None:
    vote = sign_vote(KEY, CHAIN_ID, VoteType.PRECOMMIT, 5, 2, A)
    assert Vote.decode(vote.encode()) == vote
    assert vote.is_signed_by_validator(CHAIN_ID)
    proposal = sign_proposal(KEY, CHAIN_ID, 5, 2, A, 1)
    assert Proposal.decode(proposal.encode()) == proposal
    assert proposal.is_signed_by_proposer(CHAIN_ID)


def test_sign_bytes_are_the_agreed_layout() -> None:
    vote_root = signing_root(DOMAIN_VOTE, pack([1, CHAIN_ID, 1, 5, 2, b""]))
    assert compute_vote_root(CHAIN_ID, VoteType.PREVOTE, 5, 2, NIL) == vote_root
    proposal_root = signing_root(DOMAIN_PROPOSAL, pack([1, CHAIN_ID, 5, 2, A, -1]))
    assert compute_proposal_root(CHAIN_ID, 5, 2, A, -1) == proposal_root


def test_nil_vote_round_trips() -> None:
    vote = sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, 1, 0, NIL)
    assert Vote.decode(vote.encode()) == vote


def test_invalid_signature_for_other_type_or_chain() -> None:
    vote = sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, 1, 0, A)
    assert not replace(vote, vote_type=VoteType.PRECOMMIT).is_signed_by_validator(CHAIN_ID)
    assert not vote.is_signed_by_validator("other-chain")
    proposal = sign_proposal(KEY, CHAIN_ID, 1, 1, A, -1)
    assert not replace(proposal, valid_round=0).is_signed_by_proposer(CHAIN_ID)


def test_invalid_vote_block_hash_length() -> None:
    obj = sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, 1, 0, A).to_obj()
    obj[4] = b"\1" * 31
    with pytest.raises(CodecError):
        Vote.decode(pack(obj))


def test_invalid_vote_type() -> None:
    obj = sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, 1, 0, A).to_obj()
    obj[1] = 3
    with pytest.raises(CodecError):
        Vote.decode(pack(obj))


def test_invalid_proposal_valid_round_not_below_round() -> None:
    obj = sign_proposal(KEY, CHAIN_ID, 1, 2, A, 1).to_obj()
    obj[4] = 2
    with pytest.raises(CodecError):
        Proposal.decode(pack(obj))


def test_invalid_version() -> None:
    obj = sign_vote(KEY, CHAIN_ID, VoteType.PREVOTE, 1, 0, A).to_obj()
    obj[0] = 2
    with pytest.raises(CodecError):
        Vote.decode(pack(obj))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoders(data: bytes) -> None:
    for decode in (Vote.decode, Proposal.decode):
        try:
            message = decode(data)
        except CodecError:
            continue
        assert unpack(message.encode()) == unpack(data)
