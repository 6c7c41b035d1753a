"""Shared verification of gossiped txs: some validators check a batch, the others trust them.

Every validator must believe each signature of every tx it votes on. It used to verify
each gossiped tx itself, so with n validators each tx was verified n times. Now, with k
the number of vouchers a batch needs (the `threshold`):

- A batch's origin (the node that took the txs from its clients and gossips them) has
  verified every signature in it: it admits only txs whose signatures verify.
- The k - 1 validators after the origin in the set's order (k validators from a point
  the batch's digest picks, when the origin is no validator) verify the batch again.
  Each sends ATTEST with the batch's digest and a bitmap of the txs it believes (it
  admitted them, or refused them only after their signatures verified) to the others.
- Every other validator waits for those attestations. Once the k vouch for the batch
  (the origin and its designated verifiers, all in the current set: an attestation from
  anyone else counts for nothing), the txs that all k believe are admitted without
  verifying their signatures again; the others are verified here. Every other admission
  check still runs here.
- A batch that does not gather k within the wait is verified here, as before, so a
  silent or lying validator costs time, never correctness.

The threshold is what a forged signature would take:
- "quorum" (k = the consensus quorum, floor(2n/3) + 1: 2f+1 when n = 3f+1; the
  default): only a quorum of colluding validators could make a correct
  one admit a tx nobody signed, and a quorum can already get any block certified.
  So this trusts nothing that consensus does not already trust. With n = 4 each tx is verified
  3 times instead of 4.
- "one_correct" (k = f+1, at least 2): one of any f+1 validators is correct, so with at
  most f Byzantine validators (the assumption consensus is safe under) nothing changes;
  but f+1 colluding validators, an origin and the f after it in the set's order, could
  then get a forged tx admitted and committed (the correct validators' votes carry it),
  which takes a quorum otherwise. With n = 4, 2 verifications instead of 4.

"Verified" above means admitted by a node that believes the signatures: it verified
them, or they were vouched for to it the same way. An attestation travels over the
sender's authenticated P2P session, so it needs no signature of its own: the session's
key is the validator's key. A key counts once however often it attests.

This module is the bookkeeping (who must verify, who vouched, what is waiting, within
which bounds); `node.runtime` does the waiting and the admitting.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from consensus.validators import ValidatorSet
from ledger.tx import SignedTx

DIGEST_DOMAIN = b"bakong/gossip-batch/v1\x00"
DIGEST_SIZE = 32
# Attestations kept per validator for batches not seen yet (an ATTEST can overtake the
# origin's batch); a validator's oldest go first.
MAX_EARLY_PER_PEER = 1024

Threshold = Literal["quorum", "one_correct"]
THRESHOLDS: Final[tuple[Threshold, ...]] = ("quorum", "one_correct")


def compute_vouchers_needed(validators: ValidatorSet, threshold: Threshold) -> int:
    """k: the quorum for "quorum", f+1 for "one_correct"; never the origin alone while there is
    another validator (with f = 0 there is no fault to tolerate, but one key is not
    trusted on its own word)."""
    k = validators.quorum if threshold == "quorum" else validators.one_correct
    return max(k, min(2, validators.size))


def compute_batch_digest(wire_hashes: Sequence[bytes]) -> bytes:
    """The digest an attestation names: the batch's wire hashes in order (each covers a
    whole signed tx, every key and signature), after a domain tag."""
    h = hashlib.sha256(DIGEST_DOMAIN)
    for wire_hash in wire_hashes:
        h.update(wire_hash)
    return h.digest()


def designated_verifiers(
    validators: ValidatorSet, origin: bytes, digest: bytes, threshold: Threshold
) -> tuple[bytes, ...]:
    """The validators that verify a batch and attest it. With the origin, when it is a
    validator (it verified the batch before gossiping it), they are k: the k - 1 after
    it in the set's order. Otherwise the k from the position the digest picks."""
    n = validators.size
    start = validators.get_index(origin)
    count = compute_vouchers_needed(validators, threshold)
    if start is None:
        start = int.from_bytes(digest[:8], "big") % n
    else:
        start, count = start + 1, count - 1
    return tuple(validators.validators[(start + k) % n].public_key for k in range(count))


def is_vouched(
    validators: ValidatorSet,
    origin: bytes,
    digest: bytes,
    vouchers: Collection[bytes],
    threshold: Threshold,
) -> bool:
    """Whether the origin (when a validator) and every designated verifier of the batch
    in `validators` vouch for it: k keys of the set, and no others counted."""
    return len(counted_vouchers(validators, origin, digest, vouchers, threshold)) >= (
        compute_vouchers_needed(validators, threshold)
    )


def counted_vouchers(
    validators: ValidatorSet,
    origin: bytes,
    digest: bytes,
    vouchers: Collection[bytes],
    threshold: Threshold,
) -> set[bytes]:
    """The vouchers that count: the origin, when a validator, and the designated ones."""
    counted = set(designated_verifiers(validators, origin, digest, threshold))
    if validators.get_index(origin) is not None:
        counted.add(origin)
    return counted.intersection(vouchers)


def encode_bitmap(flags: Sequence[bool]) -> bytes:
    """Bit i (byte i // 8, bit i % 8) says whether tx i of a batch is believed."""
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def is_bitmap_for(bitmap: bytes, count: int) -> bool:
    """A well-formed bitmap for a batch of `count` txs: its length, no bit past the end."""
    if len(bitmap) != (count + 7) // 8:
        return False
    return not (count % 8 and bitmap[-1] >> (count % 8))


@dataclass(slots=True)
class WaitingBatch:
    """A gossiped batch held until its k validators vouch for it (or its wait ends).
    `vouchers`: each voucher's bitmap of the txs it believes (the origin's: all)."""

    origin: bytes
    digest: bytes
    items: list[tuple[SignedTx, bytes]]
    vouchers: dict[bytes, bytes] = field(default_factory=dict)


class Attestations:
    """Batches waiting for vouchers, and attestations that came before their batch.

    Bounded: at most `max_waiting_txs` txs wait, a quarter of them from one origin
    (beyond, a batch is verified at once); `MAX_EARLY_PER_PEER` early digests are kept per
    validator; attestations from keys outside the validator set passed in are dropped.
    A batch is held per (origin, digest): a copy of an honest origin's batch that another
    peer sends first does not displace it."""

    def __init__(self, threshold: Threshold, max_waiting_txs: int) -> None:
        self.threshold: Threshold = threshold
        self.max_waiting_txs = max_waiting_txs
        self.max_waiting_per_origin = max(1, max_waiting_txs // 4)
        self._waiting: dict[tuple[bytes, bytes], WaitingBatch] = {}
        self._by_digest: dict[bytes, list[WaitingBatch]] = {}
        self._by_tx: dict[bytes, tuple[SignedTx, bytes]] = {}
        self._early: dict[bytes, OrderedDict[bytes, bytes]] = {}
        self._per_origin: dict[bytes, int] = {}
        self.waiting_txs = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def is_held(self, origin: bytes, digest: bytes) -> bool:
        return (origin, digest) in self._waiting

    def designated(
        self, validators: ValidatorSet, origin: bytes, digest: bytes
    ) -> tuple[bytes, ...]:
        return designated_verifiers(validators, origin, digest, self.threshold)

    def is_vouched(self, validators: ValidatorSet, batch: WaitingBatch) -> bool:
        return is_vouched(validators, batch.origin, batch.digest, batch.vouchers, self.threshold)

    def trusted(self, validators: ValidatorSet, batch: WaitingBatch) -> set[bytes]:
        """Wire hashes of the txs every counted voucher believes, once the batch is
        vouched for (else none): the txs admitted without verifying their signatures."""
        counted = counted_vouchers(
            validators, batch.origin, batch.digest, batch.vouchers, self.threshold
        )
        if len(counted) < compute_vouchers_needed(validators, self.threshold):
            return set()
        believed = -1
        for key in counted:
            believed &= int.from_bytes(batch.vouchers[key], "little")
        return {tx.wire_hash for i, (tx, _) in enumerate(batch.items) if believed >> i & 1}

    def wait(
        self,
        validators: ValidatorSet,
        origin: bytes,
        digest: bytes,
        items: list[tuple[SignedTx, bytes]],
    ) -> WaitingBatch | None:
        """Hold a batch for vouchers; None when there is no room (verify it now) or the
        origin's same batch already waits (the caller drops the repeat)."""
        size = len(items)
        if (
            (origin, digest) in self._waiting
            or self.waiting_txs + size > self.max_waiting_txs
            or self._per_origin.get(origin, 0) + size > self.max_waiting_per_origin
        ):
            return None
        vouchers: dict[bytes, bytes] = {}
        if validators.get_index(origin) is not None:
            vouchers[origin] = encode_bitmap([True] * size)
        for peer, early in self._early.items():
            bitmap = early.get(digest)
            if bitmap is not None and is_bitmap_for(bitmap, size):
                vouchers.setdefault(peer, bitmap)
        batch = WaitingBatch(origin, digest, items, vouchers)
        self._waiting[(origin, digest)] = batch
        self._by_digest.setdefault(digest, []).append(batch)
        self.waiting_txs += size
        self._per_origin[origin] = self._per_origin.get(origin, 0) + size
        for tx, raw in items:
            self._by_tx[tx.hash] = (tx, raw)
        return batch

    def vouch(
        self, validators: ValidatorSet, peer: bytes, digest: bytes, bitmap: bytes
    ) -> list[WaitingBatch]:
        """Record `peer`'s attestation of `digest` with the bitmap of the txs it believes
        (dropped unless `peer` is a validator; a bitmap that does not fit the batch, or a
        second one from the same peer, is ignored); the waiting batches it completes."""
        if validators.get_index(peer) is None:
            return []
        batches = self._by_digest.get(digest)
        if not batches:
            early = self._early.setdefault(peer, OrderedDict())
            early.setdefault(digest, bitmap)
            if len(early) > MAX_EARLY_PER_PEER:
                early.popitem(last=False)
            return []
        completed = []
        for batch in batches:
            if peer in batch.vouchers or not is_bitmap_for(bitmap, len(batch.items)):
                continue
            before = self.is_vouched(validators, batch)
            batch.vouchers[peer] = bitmap
            if not before and self.is_vouched(validators, batch):
                completed.append(batch)
        return completed

    def release(self, batch: WaitingBatch) -> None:
        """The batch's wait is over (vouched or not): forget it."""
        if self._waiting.pop((batch.origin, batch.digest), None) is None:
            return
        same = self._by_digest.get(batch.digest, [])
        same[:] = [b for b in same if b is not batch]
        if not same:
            self._by_digest.pop(batch.digest, None)
        size = len(batch.items)
        self.waiting_txs -= size
        left = self._per_origin.get(batch.origin, 0) - size
        if left > 0:
            self._per_origin[batch.origin] = left
        else:
            self._per_origin.pop(batch.origin, None)
        for tx, _ in batch.items:
            held = self._by_tx.get(tx.hash)
            if held is not None and held[0] is tx:
                del self._by_tx[tx.hash]
        for other in same:  # another peer's copy of the batch still waits
            for tx, raw in other.items:
                self._by_tx.setdefault(tx.hash, (tx, raw))

    def lookup(self, tx_hash: bytes) -> tuple[SignedTx, bytes] | None:
        """A waiting tx by id (a proposal may name it before its batch is vouched)."""
        return self._by_tx.get(tx_hash)
