"""Signed consensus messages: proposals and votes, with one canonical encoding each.

Values are block hashes; the block body travels beside the proposal at node level. A
signature covers a domain-separated root that includes the chain id, so a vote can
never be replayed on another chain or as another kind of message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ledger.codec import expect_bytes, expect_int, expect_list, expect_version, fail, pack, unpack
from ledger.commit import MAX_HEIGHT, MAX_ROUND
from ledger.constants import (
    DOMAIN_PROPOSAL,
    DOMAIN_VOTE,
    HASH_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
)
from ledger.crypto import PrivateKey, signing_root, verify_root

MESSAGE_VERSION = 1
NIL = b""
"""The nil value of a vote: no block."""


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


def compute_vote_root(
    chain_id: str, vote_type: VoteType, height: int, round_: int, block_hash: bytes
) -> bytes:
    payload = pack([MESSAGE_VERSION, chain_id, int(vote_type), height, round_, block_hash])
    return signing_root(DOMAIN_VOTE, payload)


def compute_proposal_root(
    chain_id: str, height: int, round_: int, block_hash: bytes, valid_round: int
) -> bytes:
    payload = pack([MESSAGE_VERSION, chain_id, height, round_, block_hash, valid_round])
    return signing_root(DOMAIN_PROPOSAL, payload)


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit for `block_hash` (NIL for none), signed by `validator`."""

    vote_type: VoteType
    height: int
    round: int
    block_hash: bytes
    validator: bytes
    signature: bytes

    def compute_root(self, chain_id: str) -> bytes:
        return compute_vote_root(chain_id, self.vote_type, self.height, self.round, self.block_hash)

    def is_signed_by_validator(self, chain_id: str) -> bool:
        return verify_root(self.validator, self.compute_root(chain_id), self.signature)

    def to_obj(self) -> list[Any]:
        return [
            MESSAGE_VERSION,
            int(self.vote_type),
            self.height,
            self.round,
            self.block_hash,
            self.validator,
            self.signature,
        ]

    def encode(self) -> bytes:
        return pack(self.to_obj())

    @staticmethod
    def from_obj(obj: Any) -> Vote:
        fields = expect_list(obj, 7, "vote")
        expect_version(fields[0], MESSAGE_VERSION, "vote")
        block_hash = expect_bytes(fields[4], None, "vote block hash")
        # a vote is for a block hash or for nil
        if len(block_hash) not in (0, HASH_SIZE):
            fail("vote block hash: expected 0 or 32 bytes", "wrong_length")
        return Vote(
            vote_type=VoteType(expect_int(fields[1], 1, 2, "vote type")),
            height=expect_int(fields[2], 0, MAX_HEIGHT, "vote height"),
            round=expect_int(fields[3], 0, MAX_ROUND, "vote round"),
            block_hash=block_hash,
            validator=expect_bytes(fields[5], PUBLIC_KEY_SIZE, "vote validator"),
            signature=expect_bytes(fields[6], SIGNATURE_SIZE, "vote signature"),
        )

    @staticmethod
    def decode(data: bytes) -> Vote:
        return Vote.from_obj(unpack(data))


@dataclass(frozen=True, slots=True)
class Proposal:
    """The proposer's value for (height, round); `valid_round` is -1 or the round in which
    2f+1 prevoted the value (a re-proposal, Algorithm 1 line 28)."""

    height: int
    round: int
    block_hash: bytes
    valid_round: int
    proposer: bytes
    signature: bytes

    def compute_root(self, chain_id: str) -> bytes:
        return compute_proposal_root(
            chain_id, self.height, self.round, self.block_hash, self.valid_round
        )

    def is_signed_by_proposer(self, chain_id: str) -> bool:
        return verify_root(self.proposer, self.compute_root(chain_id), self.signature)

    def to_obj(self) -> list[Any]:
        return [
            MESSAGE_VERSION,
            self.height,
            self.round,
            self.block_hash,
            self.valid_round,
            self.proposer,
            self.signature,
        ]

    def encode(self) -> bytes:
        return pack(self.to_obj())

    @staticmethod
    def from_obj(obj: Any) -> Proposal:
        fields = expect_list(obj, 7, "proposal")
        expect_version(fields[0], MESSAGE_VERSION, "proposal")
        round_ = expect_int(fields[2], 0, MAX_ROUND, "proposal round")
        return Proposal(
            height=expect_int(fields[1], 0, MAX_HEIGHT, "proposal height"),
            round=round_,
            block_hash=expect_bytes(fields[3], HASH_SIZE, "proposal block hash"),
            valid_round=expect_int(fields[4], -1, round_ - 1, "proposal valid round"),
            proposer=expect_bytes(fields[5], PUBLIC_KEY_SIZE, "proposal proposer"),
            signature=expect_bytes(fields[6], SIGNATURE_SIZE, "proposal signature"),
        )

    @staticmethod
    def decode(data: bytes) -> Proposal:
        return Proposal.from_obj(unpack(data))


def sign_vote(
    key: PrivateKey,
    chain_id: str,
    vote_type: VoteType,
    height: int,
    round_: int,
    block_hash: bytes,
) -> Vote:
    root = compute_vote_root(chain_id, vote_type, height, round_, block_hash)
    return Vote(vote_type, height, round_, block_hash, key.public_key, key.sign_root(root))


def sign_proposal(
    key: PrivateKey, chain_id: str, height: int, round_: int, block_hash: bytes, valid_round: int
) -> Proposal:
    root = compute_proposal_root(chain_id, height, round_, block_hash, valid_round)
    return Proposal(height, round_, block_hash, valid_round, key.public_key, key.sign_root(root))


SignedMessage = Vote | Proposal
