from __future__ import annotations

from dataclasses import replace

import pytest

from consensus import InvalidCommit, VoteType, sign_vote, verify_commit
from ledger.block import Commit, CommitSig
from ledger.crypto import PrivateKey, sha256
from tests.consensus.sim import CHAIN_ID, make_keys, make_validator_set

KEYS = make_keys(4)
VSET = make_validator_set(KEYS)
A = sha256(b"a")


def make_commit(signers: list[PrivateKey], height: int = 5, round_: int = 1) -> Commit:
    votes = [sign_vote(k, CHAIN_ID, VoteType.PRECOMMIT, height, round_, A) for k in signers]
    return Commit(height, round_, A, tuple(CommitSig(v.validator, v.signature) for v in votes))


def test_basic() -> None:
    verify_commit(VSET, CHAIN_ID, 5, A, make_commit(KEYS[:3]))
    verify_commit(VSET, CHAIN_ID, 5, A, make_commit(KEYS))


def test_invalid_height() -> None:
    with pytest.raises(InvalidCommit):
        verify_commit(VSET, CHAIN_ID, 6, A, make_commit(KEYS[:3]))


def test_invalid_block_hash() -> None:
    with pytest.raises(InvalidCommit):
        verify_commit(VSET, CHAIN_ID, 5, sha256(b"b"), make_commit(KEYS[:3]))


def test_invalid_signer_not_a_validator() -> None:
    commit = make_commit([*KEYS[:2], PrivateKey(sha256(b"outsider"))])
    with pytest.raises(InvalidCommit):
        verify_commit(VSET, CHAIN_ID, 5, A, commit)


def test_invalid_duplicate_signer() -> None:
    with pytest.raises(InvalidCommit) as raised:
        verify_commit(VSET, CHAIN_ID, 5, A, make_commit([KEYS[0], KEYS[1], KEYS[1]]))
    assert raised.value.code == "invalid_commit"


def test_invalid_signature() -> None:
    commit = make_commit(KEYS[:3])
    forged = replace(commit, round=2)
    with pytest.raises(InvalidCommit):
        verify_commit(VSET, CHAIN_ID, 5, A, forged)


def test_invalid_prevote_signatures_do_not_count() -> None:
    votes = [sign_vote(k, CHAIN_ID, VoteType.PREVOTE, 5, 1, A) for k in KEYS[:3]]
    commit = Commit(5, 1, A, tuple(CommitSig(v.validator, v.signature) for v in votes))
    with pytest.raises(InvalidCommit):
        verify_commit(VSET, CHAIN_ID, 5, A, commit)


def test_invalid_too_few_signatures() -> None:
    with pytest.raises(InvalidCommit):
        verify_commit(VSET, CHAIN_ID, 5, A, make_commit(KEYS[:2]))
