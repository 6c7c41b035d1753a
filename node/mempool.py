"""Pending transactions: admission checks, persistence, block filling and eviction.

An acknowledged tx is written to the node's store before the client hears 202, so it
survives a crash and is gossiped again after restart. After each commit the txs of the
signers the block touched are re-checked against the new state; those that can no longer
apply are evicted and recorded as `rejected` with their reason.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ledger import chain, schema
from ledger.errors import BadSignature, LedgerError
from ledger.kv import KeyValueStore
from ledger.state import Account, State
from ledger.transition import BlockContext, apply_tx
from ledger.tx import SignedTx, check_signer_keys, is_signature_valid

log = logging.getLogger("bakong.mempool")

RECHECK_WINDOW = 2000


class MempoolError(Exception):
    """A refused tx; `code` is stable and `status` is the HTTP status to answer with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(slots=True)
class PendingTx:
    tx: SignedTx
    raw: bytes
    received_ms: int


class VerifiedCache:
    """Wire hashes of signed txs whose signatures this node already verified: each is
    verified once. Keyed by `tx.wire_hash`, which covers the body and every key and
    signature (the body hash covers no signature: keyed by it, one verified variant would
    pass every other). Bounded: the oldest entries go first."""

    def __init__(self, capacity: int = 500_000) -> None:
        self._hashes: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, wire_hash: bytes) -> bool:
        return wire_hash in self._hashes

    def add(self, wire_hash: bytes) -> None:
        self._hashes[wire_hash] = None
        if len(self._hashes) > self._capacity:
            self._hashes.popitem(last=False)

    def verify(self, tx: SignedTx) -> bool:
        """Whether every signature of `tx` verifies; a yes is remembered. Only for a tx
        that is judged on its own (admission): a block's txs are added once the whole
        block is valid."""
        if tx.wire_hash in self._hashes:
            return True
        if not is_signature_valid(tx):
            return False
        self.add(tx.wire_hash)
        return True


class Mempool:
    def __init__(
        self,
        store: KeyValueStore,
        chain_id: str,
        *,
        capacity: int,
        nonce_window: int,
        tx_ttl_ms: int,
        max_clock_skew_ms: int,
        verified: VerifiedCache | None = None,
        rejected_capacity: int = 200_000,
    ) -> None:
        self._store = store
        self._chain_id = chain_id
        self._capacity = capacity
        self._nonce_window = nonce_window
        self._ttl_ms = tx_ttl_ms
        self._skew_ms = max_clock_skew_ms
        self.verified = verified if verified is not None else VerifiedCache()
        self._txs: dict[bytes, PendingTx] = {}
        self._by_signer: dict[str, dict[int, bytes]] = {}
        self._rejected: OrderedDict[bytes, str] = OrderedDict()
        self._rejected_capacity = rejected_capacity
        self.rejections_by_code: dict[str, int] = {}
        self._recheck_cursor = 0
        self.on_evict: Callable[[bytes, str], None] = lambda tx_hash, code: None

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def get(self, tx_hash: bytes) -> SignedTx | None:
        pending = self._txs.get(tx_hash)
        return pending.tx if pending else None

    def pending_nonces(self, signer: str) -> list[int]:
        return sorted(self._by_signer.get(signer, {}))

    # Admission.
    def check(self, tx: SignedTx, now_ms: int) -> None:
        """Every admission check except capacity; raises MempoolError."""
        body = tx.body
        if tx.hash in self._txs:
            raise MempoolError("duplicate", "transaction is already pending", 409)
        if body.chain_id != self._chain_id:
            raise MempoolError("wrong_chain", f"chain id {body.chain_id!r} is not this chain's")
        account = self._get_account(body.signer)
        if account is None:
            raise MempoolError("unknown_account", f"signer {body.signer} does not exist")
        # A used nonce: a replay of a committed tx, or a tx that lost its nonce to another.
        # (Only then is the tx index consulted: a miss there is the costliest read here.)
        if body.nonce < account.nonce:
            if chain.get_tx_location(self._store, tx.hash) is not None:
                raise MempoolError("already_committed", "transaction is already committed", 409)
            raise MempoolError("bad_nonce", f"nonce {body.nonce} is used; next is {account.nonce}")
        if body.created_at < now_ms - self._ttl_ms:
            raise MempoolError("expired", "transaction created_at is older than the tx TTL")
        if body.created_at > now_ms + self._skew_ms:
            raise MempoolError("future_tx", "transaction created_at is in the future")
        if account.frozen:
            raise MempoolError("account_frozen", f"signer {body.signer} is frozen")
        if body.nonce >= account.nonce + self._nonce_window:
            raise MempoolError("bad_nonce", f"nonce {body.nonce} is too far ahead")
        if body.nonce in self._by_signer.get(body.signer, {}):
            raise MempoolError("nonce_taken", f"a pending tx already uses nonce {body.nonce}", 409)
        # Only the signer's keys sign (checked before any signature is verified).
        try:
            check_signer_keys(tx, account.get_signing_keys())
        except BadSignature as exc:
            raise MempoolError("bad_signature", f"not signed by {body.signer}'s key") from exc
        if not self.verified.verify(tx):
            raise MempoolError("bad_signature", "signature does not verify")

    def _get_account(self, account: str) -> Account | None:
        raw = self._store.get(schema.make_account_key(account))
        return Account.decode(raw) if raw is not None else None

    def add(self, tx: SignedTx, raw: bytes, now_ms: int) -> bytes:
        """Check and persist one tx; returns its hash or raises MempoolError."""
        [(tx_hash, error)] = self.add_many([(tx, raw)], now_ms)
        if error is not None:
            raise error
        return tx_hash

    def add_many(
        self, items: Iterable[tuple[SignedTx, bytes]], now_ms: int
    ) -> list[tuple[bytes, MempoolError | None]]:
        """Admit a batch with one store batch; per-tx outcome in order."""
        outcomes: list[tuple[bytes, MempoolError | None]] = []
        admitted: list[PendingTx] = []
        for tx, raw in items:
            try:
                self.check(tx, now_ms)
                if len(self._txs) >= self._capacity:
                    raise MempoolError("mempool_full", "the mempool is full; retry later", 429)
            except MempoolError as exc:
                outcomes.append((tx.hash, exc))
                continue
            pending = PendingTx(tx, raw, now_ms)
            self._insert(pending)
            admitted.append(pending)
            outcomes.append((tx.hash, None))
        if admitted:
            with self._store.atomic_batch(sync=False) as batch:
                for p in admitted:
                    batch.put(schema.make_mempool_key(p.tx.hash), p.raw)
        return outcomes

    def _insert(self, pending: PendingTx) -> None:
        body = pending.tx.body
        self._txs[pending.tx.hash] = pending
        self._by_signer.setdefault(body.signer, {})[body.nonce] = pending.tx.hash

    def _remove(self, tx_hash: bytes) -> PendingTx | None:
        pending = self._txs.pop(tx_hash, None)
        if pending is None:
            return None
        body = pending.tx.body
        nonces = self._by_signer.get(body.signer)
        if nonces is not None:
            nonces.pop(body.nonce, None)
            if not nonces:
                del self._by_signer[body.signer]
        return pending

    # Block filling.
    def candidates(self, max_txs: int, max_bytes: int) -> Iterator[SignedTx]:
        """Pending txs in arrival order, within limits; execution decides which fit."""
        size = 0
        for count, pending in enumerate(self._txs.values()):
            size += len(pending.raw)
            if count >= max_txs or size > max_bytes:
                return
            yield pending.tx

    def all_raw(self) -> list[bytes]:
        return [p.raw for p in self._txs.values()]

    # After a commit.
    def update(
        self,
        included: Iterable[bytes],
        touched_signers: Iterable[str],
        ctx: BlockContext,
    ) -> list[tuple[bytes, str]]:
        """Drop included txs, then re-check touched signers' queues; returns evictions."""
        deletes: list[bytes] = []
        for tx_hash in included:
            if self._remove(tx_hash) is not None:
                deletes.append(tx_hash)
        evicted = self._recheck(set(touched_signers) | self._sample_signers(), ctx)
        evicted += self._expire(ctx.time_ms)
        deletes.extend(h for h, _ in evicted)
        if deletes:
            with self._store.atomic_batch(sync=False) as batch:
                for tx_hash in deletes:
                    batch.delete(schema.make_mempool_key(tx_hash))
                for tx_hash, code in evicted:
                    batch.put(schema.make_node_rejected_key(tx_hash), code.encode())
        for tx_hash, code in evicted:
            self._record_rejection(tx_hash, code)
        return evicted

    def _sample_signers(self) -> set[str]:
        """Signers whose queue head is re-checked although the block did not touch them:
        a tx that failed in another node's proposal is left out of the block, so only a
        re-check tells this node to report it rejected. All of them while few, else a
        rotating window so the cost per block stays bounded."""
        signers = list(self._by_signer)
        if len(signers) <= RECHECK_WINDOW:
            return set(signers)
        start = self._recheck_cursor % len(signers)
        self._recheck_cursor = start + RECHECK_WINDOW
        window = signers[start : start + RECHECK_WINDOW]
        return set(window + signers[: max(0, start + RECHECK_WINDOW - len(signers))])

    def _recheck(self, signers: set[str], ctx: BlockContext) -> list[tuple[bytes, str]]:
        evicted: list[tuple[bytes, str]] = []
        state = State(self._store)
        for signer in signers:
            nonces = self._by_signer.get(signer)
            if not nonces:
                continue
            account = state.get_account(signer)
            for nonce in sorted(nonces):
                tx_hash = nonces[nonce]
                if account is None or nonce < account.nonce:
                    evicted.append((tx_hash, "unknown_account" if account is None else "bad_nonce"))
                    continue
                if nonce > account.nonce:
                    break
                result = apply_tx(state, ctx, self._txs[tx_hash].tx)
                if result.code is not None:
                    evicted.append((tx_hash, result.code))
                break
        for tx_hash, _ in evicted:
            self._remove(tx_hash)
        return evicted

    def _expire(self, now_ms: int) -> list[tuple[bytes, str]]:
        cutoff = now_ms - self._ttl_ms
        expired = [h for h, p in self._txs.items() if p.tx.body.created_at < cutoff]
        for tx_hash in expired:
            self._remove(tx_hash)
        return [(h, "expired") for h in expired]

    def reject(self, tx_hash: bytes, code: str) -> None:
        """Evict one pending tx that failed in a proposal's execution."""
        if self._remove(tx_hash) is None:
            return
        with self._store.atomic_batch(sync=False) as batch:
            batch.delete(schema.make_mempool_key(tx_hash))
            batch.put(schema.make_node_rejected_key(tx_hash), code.encode())
        self._record_rejection(tx_hash, code)

    def _record_rejection(self, tx_hash: bytes, code: str) -> None:
        self.on_evict(tx_hash, code)
        self._rejected[tx_hash] = code
        self.rejections_by_code[code] = self.rejections_by_code.get(code, 0) + 1
        if len(self._rejected) > self._rejected_capacity:
            self._rejected.popitem(last=False)

    def rejection_of(self, tx_hash: bytes) -> str | None:
        code = self._rejected.get(tx_hash)
        if code is not None:
            return code
        raw = self._store.get(schema.make_node_rejected_key(tx_hash))
        return raw.decode() if raw is not None else None

    # Restart.
    def load(self, now_ms: int) -> int:
        """Re-admit persisted txs after a restart; drops committed and now-invalid ones."""
        stale: list[bytes] = []
        loaded = 0
        for key, raw in self._store.iterate(schema.MEMPOOL_PREFIX):
            try:
                tx = SignedTx.decode(raw)
                self.check(tx, now_ms)
            except (LedgerError, MempoolError) as exc:
                log.info("dropping persisted tx %s: %s", key[-32:].hex(), exc)
                stale.append(key)
                continue
            self._insert(PendingTx(tx, raw, now_ms))
            loaded += 1
        if stale:
            with self._store.atomic_batch(sync=False) as batch:
                for key in stale:
                    batch.delete(key)
        return loaded
