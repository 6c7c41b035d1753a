"""Shared verification of gossiped txs: f+1 validators check a batch, the others trust them.

Every validator must believe each signature of every tx it votes on. It used to verify
each gossiped tx itself, so with n validators each tx was verified n times. Now:

- A batch's origin (the node that took the txs from its clients and gossips them) has
  verified every signature in it: it admits only txs whose signatures verify.
- The f validators after the origin in the set's order (f+1 validators from a point the
  batch's digest picks, when the origin is no validator) verify the batch again. Each
  that admits every tx of it sends ATTEST with the batch's digest to its peers.
- Every other validator waits for those attestations. Once f+1 distinct validators of
  the current set vouch for a batch (the origin among them, when it is a validator), at
  least one of them is correct and verified every signature, so the batch is admitted
  without verifying them again. Every other admission check still runs here.
- A batch that does not gather f+1 within `wait_ms` is verified here, as before, so a
  silent or lying validator costs time, never correctness.

An attestation travels over the sender's authenticated P2P session, so it needs no
signature of its own: the session's key is the validator's key. Only the current
validator set's keys count; the origin counts once however often it attests.

This module is the bookkeeping (who must verify, who vouched, what is waiting, within
which bounds); `node.runtime` does the waiting and the admitting.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus.validators import ValidatorSet
from ledger.tx import SignedTx

DIGEST_DOMAIN = b"bakong/gossip-batch/v1\x00"
DIGEST_SIZE = 32
# Attestations for batches not seen yet (a peer's ATTEST can overtake the origin's batch).
MAX_EARLY = 4096


def compute_batch_digest(wire_hashes: Sequence[bytes]) -> bytes:
    """The digest an attestation names: the batch's wire hashes in order (each covers a
    whole signed tx, every key and signature), after a domain tag."""
    h = hashlib.sha256(DIGEST_DOMAIN)
    for wire_hash in wire_hashes:
        h.update(wire_hash)
    return h.digest()


def designated_verifiers(
    validators: ValidatorSet, origin: bytes, digest: bytes
) -> tuple[bytes, ...]:
    """The validators that verify a batch and attest it. With the origin, when it is a
    validator (it verified the batch before gossiping it), they are f+1: the f after it
    in the set's order. Otherwise the f+1 from the position the digest picks."""
    n = validators.size
    start = validators.get_index(origin)
    count = validators.one_correct
    if start is None:
        start = int.from_bytes(digest[:8], "big") % n
    else:
        start, count = start + 1, count - 1
    return tuple(validators.validators[(start + k) % n].public_key for k in range(count))


def count_vouchers(validators: ValidatorSet, vouchers: set[bytes]) -> int:
    return sum(1 for key in vouchers if validators.get_index(key) is not None)


def is_vouched(validators: ValidatorSet, vouchers: set[bytes]) -> bool:
    """Whether f+1 validators of `validators` vouch: at least one of them is correct."""
    return count_vouchers(validators, vouchers) >= validators.one_correct


@dataclass(slots=True)
class WaitingBatch:
    """A gossiped batch held until f+1 validators vouch for it (or its wait ends)."""

    origin: bytes
    digest: bytes
    items: list[tuple[SignedTx, bytes]]
    vouchers: set[bytes] = field(default_factory=set)


class Attestations:
    """Batches waiting for vouchers, and attestations that came before their batch.

    Bounded: at most `max_waiting_txs` txs wait (beyond, a batch is verified at once) and
    `MAX_EARLY` early digests are kept (the oldest go first); only keys of the validator
    set passed in are recorded."""

    def __init__(self, max_waiting_txs: int) -> None:
        self.max_waiting_txs = max_waiting_txs
        self._waiting: dict[bytes, WaitingBatch] = {}
        self._by_tx: dict[bytes, tuple[SignedTx, bytes]] = {}
        self._early: OrderedDict[bytes, set[bytes]] = OrderedDict()
        self.waiting_txs = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def wait(
        self,
        validators: ValidatorSet,
        origin: bytes,
        digest: bytes,
        items: list[tuple[SignedTx, bytes]],
    ) -> WaitingBatch | None:
        """Hold a batch for vouchers; None when there is no room (verify it now) or the
        same digest already waits (a repeat: its txs are already held)."""
        if digest in self._waiting or self.waiting_txs + len(items) > self.max_waiting_txs:
            return None
        vouchers = self._early.pop(digest, set())
        if validators.get_index(origin) is not None:
            vouchers.add(origin)
        batch = WaitingBatch(origin, digest, items, vouchers)
        self._waiting[digest] = batch
        self.waiting_txs += len(items)
        for tx, raw in items:
            self._by_tx[tx.hash] = (tx, raw)
        return batch

    def vouch(self, validators: ValidatorSet, peer: bytes, digest: bytes) -> WaitingBatch | None:
        """Record `peer`'s attestation of `digest` (ignored unless `peer` is a validator);
        the waiting batch it completes, if any."""
        if validators.get_index(peer) is None:
            return None
        batch = self._waiting.get(digest)
        if batch is None:
            early = self._early.get(digest)
            if early is None:
                early = self._early[digest] = set()
                if len(self._early) > MAX_EARLY:
                    self._early.popitem(last=False)
            early.add(peer)
            return None
        before = is_vouched(validators, batch.vouchers)
        batch.vouchers.add(peer)
        return batch if not before and is_vouched(validators, batch.vouchers) else None

    def release(self, batch: WaitingBatch) -> None:
        """The batch's wait is over (vouched or not): forget it."""
        if self._waiting.pop(batch.digest, None) is None:
            return
        self.waiting_txs -= len(batch.items)
        for tx, _ in batch.items:
            held = self._by_tx.get(tx.hash)
            if held is not None and held[0] is tx:
                del self._by_tx[tx.hash]

    def lookup(self, tx_hash: bytes) -> tuple[SignedTx, bytes] | None:
        """A waiting tx by id (a proposal may name it before its batch is vouched)."""
        return self._by_tx.get(tx_hash)
