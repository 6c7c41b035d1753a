"""Timeouts and limits of the consensus algorithm, passed in by the node (from config)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Step(IntEnum):
    """The step of a round; the value orders them (a signature's step in SignState too)."""

    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    """Per-round timeouts grow linearly (`base + round * delta`) so that after GST some
    round is long enough for every correct validator to hear every other one."""

    propose_ms: int = 1000
    propose_delta_ms: int = 500
    prevote_ms: int = 500
    prevote_delta_ms: int = 250
    precommit_ms: int = 500
    precommit_delta_ms: int = 250
    max_rounds_ahead: int = 100

    def compute_timeout(self, step: Step, round_: int) -> int:
        """timeoutPropose / timeoutPrevote / timeoutPrecommit of Algorithm 1 for a round."""
        if step is Step.PROPOSE:
            return self.propose_ms + round_ * self.propose_delta_ms
        if step is Step.PREVOTE:
            return self.prevote_ms + round_ * self.prevote_delta_ms
        return self.precommit_ms + round_ * self.precommit_delta_ms
