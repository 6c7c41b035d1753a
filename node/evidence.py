"""Evidence of equivocation: two validly signed, conflicting messages from one validator
for one step, kept in the node's store for operators to act on.

Bounded by construction: one record per (height, round, message kind, validator), at
most `max_per_validator` per validator (one equivocator cannot crowd out the others'
evidence) and `max_records` in all (newer ones are counted, not stored, once full), and records
older than `keep_heights` below the tip are pruned after each commit. The consensus
machine only reports messages from validators of the height whose signatures verified,
so nothing from a non-validator is ever stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import consensus as cs
from ledger.constants import PUBLIC_KEY_SIZE
from ledger.kv import KeyValueStore
from ledger.schema import EVIDENCE_PREFIX, decode_evidence_height, make_evidence_key

KEEP_HEIGHTS = 100_000
MAX_RECORDS = 10_000
MAX_PER_VALIDATOR = 1_000
PROPOSAL_KIND = 0


@dataclass(frozen=True, slots=True)
class EvidenceSummary:
    stored: int
    duplicates: int
    dropped_full: int

    def to_json(self) -> dict[str, int]:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dropped_full": self.dropped_full,
        }


def _describe(message: cs.SignedMessage) -> tuple[int, int, int, bytes]:
    """(height, round, kind, validator) of a signed message."""
    if isinstance(message, cs.Proposal):
        return message.height, message.round, PROPOSAL_KIND, message.proposer
    return message.height, message.round, int(message.vote_type), message.validator


class EvidencePool:
    def __init__(
        self,
        store: KeyValueStore,
        keep_heights: int = KEEP_HEIGHTS,
        max_records: int = MAX_RECORDS,
        max_per_validator: int = MAX_PER_VALIDATOR,
    ) -> None:
        self._store = store
        self._keep = keep_heights
        self._max = max_records
        self._max_each = max_per_validator
        self._by_validator: Counter[bytes] = Counter(
            key[-PUBLIC_KEY_SIZE:] for key, _ in store.iterate(EVIDENCE_PREFIX)
        )
        self._stored = sum(self._by_validator.values())
        self._duplicates = 0
        self._dropped_full = 0

    @property
    def stored(self) -> int:
        return self._stored

    def summary(self) -> EvidenceSummary:
        return EvidenceSummary(self._stored, self._duplicates, self._dropped_full)

    def record(self, evidence: cs.Evidence) -> bool:
        """Store one piece of evidence; False if it was a duplicate or the pool is full."""
        height, round_, kind, validator = _describe(evidence.first)
        key = make_evidence_key(height, round_, kind, validator)
        if self._store.get(key) is not None:
            self._duplicates += 1
            return False
        if self._stored >= self._max or self._by_validator[validator] >= self._max_each:
            self._dropped_full += 1
            return False
        self._store.put(key, evidence.first.encode() + evidence.second.encode())
        self._stored += 1
        self._by_validator[validator] += 1
        return True

    def prune(self, tip: int) -> int:
        """Delete records of heights more than `keep_heights` below `tip`; how many."""
        cutoff = tip - self._keep
        if cutoff <= 0:
            return 0
        old = []
        for key, _ in self._store.iterate(EVIDENCE_PREFIX):
            if decode_evidence_height(key) >= cutoff:
                break
            old.append(key)
        if old:
            with self._store.atomic_batch(sync=False) as batch:
                for key in old:
                    batch.delete(key)
            self._stored -= len(old)
            self._by_validator.subtract(key[-PUBLIC_KEY_SIZE:] for key in old)
        return len(old)
