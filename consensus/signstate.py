"""Double-sign protection: what this validator signed last, persisted before it leaves.

A validator signs at most one message per (height, round, step) and never goes back.
After a restart it re-sends the stored message instead of signing anything new for that
step. The lock (lockedRound/lockedValue) travels with it: the lock changes only when a
precommit is signed, so a restarted validator keeps the lock that makes Tendermint safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from consensus.messages import NIL, Proposal, SignedMessage, Vote
from consensus.params import Step
from ledger.codec import expect_bytes, expect_int, expect_list, expect_version, pack, unpack
from ledger.commit import MAX_HEIGHT, MAX_ROUND
from ledger.constants import HASH_SIZE

SIGN_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SignState:
    """The last signature: its (height, round, step), its signing root, the signed message
    encoding (to re-send it identically), and the lock held when it was signed."""

    height: int
    round: int
    step: Step
    root: bytes
    message: bytes
    locked_round: int
    locked_value: bytes

    def get_message(self) -> SignedMessage:
        if self.step is Step.PROPOSE:
            return Proposal.decode(self.message)
        return Vote.decode(self.message)

    def to_obj(self) -> list[Any]:
        return [
            SIGN_STATE_VERSION,
            self.height,
            self.round,
            int(self.step),
            self.root,
            self.message,
            self.locked_round,
            self.locked_value,
        ]

    def encode(self) -> bytes:
        return pack(self.to_obj())

    @staticmethod
    def from_obj(obj: Any) -> SignState:
        fields = expect_list(obj, 8, "sign state")
        expect_version(fields[0], SIGN_STATE_VERSION, "sign state")
        state = SignState(
            height=expect_int(fields[1], 0, MAX_HEIGHT, "sign state height"),
            round=expect_int(fields[2], 0, MAX_ROUND, "sign state round"),
            step=Step(expect_int(fields[3], 1, 3, "sign state step")),
            root=expect_bytes(fields[4], HASH_SIZE, "sign state root"),
            message=expect_bytes(fields[5], None, "sign state message"),
            locked_round=expect_int(fields[6], -1, MAX_ROUND, "sign state locked round"),
            locked_value=expect_bytes(fields[7], None, "sign state locked value"),
        )
        state.get_message()
        return state

    @staticmethod
    def decode(data: bytes) -> SignState:
        return SignState.from_obj(unpack(data))


class SignDecision(Enum):
    SIGN = "sign"
    RESEND = "resend"
    REFUSE = "refuse"


def get_sign_decision(last: SignState | None, height: int, round_: int, step: Step) -> SignDecision:
    """SIGN a later step; RESEND the stored message for the same step (identical if the
    value is the same, the original if it differs); REFUSE an earlier step."""
    if last is None:
        return SignDecision.SIGN
    asked = (height, round_, int(step))
    signed = (last.height, last.round, int(last.step))
    if asked > signed:
        return SignDecision.SIGN
    if asked == signed:
        return SignDecision.RESEND
    return SignDecision.REFUSE


def get_locked(sign_state: SignState, height: int) -> tuple[int, bytes | None]:
    """The lock a restarted validator must keep at `height` (none from another height)."""
    if sign_state.height != height or sign_state.locked_value == NIL:
        return -1, None
    return sign_state.locked_round, sign_state.locked_value
