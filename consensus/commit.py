"""Checking a commit certificate: what block sync trusts instead of re-running consensus."""

from __future__ import annotations

from consensus.errors import InvalidCommit
from consensus.messages import VoteType, compute_vote_root
from consensus.validators import ValidatorSet
from ledger.commit import Commit
from ledger.crypto import verify_root


def verify_commit(
    validators: ValidatorSet, chain_id: str, height: int, block_hash: bytes, commit: Commit
) -> None:
    """Raise InvalidCommit unless 2f+1 distinct validators of `validators` signed a
    precommit for exactly (height, commit.round, block_hash) on `chain_id`."""
    # the certificate is for this height
    if commit.height != height:
        raise InvalidCommit(f"commit is for height {commit.height}, not {height}")
    # the certificate is for this block
    if commit.block_hash != block_hash:
        raise InvalidCommit("commit is for another block")
    root = compute_vote_root(chain_id, VoteType.PRECOMMIT, height, commit.round, block_hash)
    signers: set[int] = set()
    for sig in commit.signatures:
        index = validators.get_index(sig.validator)
        # only validators of the height count
        if index is None:
            raise InvalidCommit(f"signer {sig.validator.hex()} is not a validator")
        # each validator counts once
        if index in signers:
            raise InvalidCommit(f"validator {sig.validator.hex()} signed twice")
        # each signature is a precommit for this block
        if not verify_root(sig.validator, root, sig.signature):
            raise InvalidCommit(f"bad precommit signature from {sig.validator.hex()}")
        signers.add(index)
    # 2f+1 distinct validators
    if len(signers) < validators.quorum:
        raise InvalidCommit(f"{len(signers)} precommits, {validators.quorum} needed")
