"""Pending transactions: admission checks, persistence, block filling and eviction.

An acknowledged tx is written to the node's store before the client hears 202, so it
survives a crash and is gossiped again after restart. After each commit the txs of the
signers the block touched are re-checked against the new state; those that can no longer
apply are evicted and recorded as `rejected` with their reason.

Each signer's pending txs are split in two. *Executable*: the run of nonces from the
signer's next committed nonce with no gap; only these go in blocks and only these keep a
node from going idle. *Queued*: the txs after a gap; they wait, at most
`max_queued_per_signer` per signer and `max_queued` in all, until the gap fills (the
missing tx arrives or a commit moves the nonce on) or they expire. The split is kept as
txs come and go, never recomputed over the whole mempool.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from ledger import chain, schema
from ledger.codec import pack, unpack
from ledger.errors import BadSignature, LedgerError, StoreError
from ledger.kv import KeyValueStore, WriteBatch
from ledger.references import check_command_binding
from ledger.state import Account, State
from ledger.transition import BlockContext, apply_tx, check_tx_age
from ledger.tx import SignedTx, check_signer_keys, is_signature_valid
from node.config import MempoolConfig
from node.errors import NodeError

log = logging.getLogger("bakong.mempool")


def make_reason(code: str, message: str = "") -> str:
    """Why a tx was rejected, as kept: its stable code, then (after a newline) what failed."""
    return f"{code}\n{message}" if message else code


def split_reason(reason: str) -> tuple[str, str]:
    """(code, message) of a reason from `make_reason`."""
    code, _, message = reason.partition("\n")
    return code, message


RECHECK_WINDOW = 2000
# Accounts kept between commits (`Mempool._get_account`); past this the cache starts over,
# so txs from many distinct signers (unknown ones too) cannot grow it without bound.
ACCOUNT_CACHE_SIZE = 50_000
_DEFAULTS = MempoolConfig()


class MempoolError(NodeError):
    """A refused tx; `code` is stable and `status` is the HTTP status to answer with.

    Codes of the limits (all 429, retry later): `mempool_full` (capacity), `queue_full`
    (this signer already has `max_queued_per_signer` txs behind a nonce gap: send the
    missing nonce first), `mempool_queue_full` (`max_queued` txs of all signers wait
    behind gaps). A queued tx dropped to keep those limits is rejected with `queue_full`.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message, code)
        self.status = status


@dataclass(slots=True)
class PendingTx:
    tx: SignedTx
    raw: bytes
    received_ms: int
    # In the store: a tx this node acknowledged to its own client. A gossiped one is
    # not (the node its client reached persisted it and gossips it again on reconnect).
    persisted: bool = True


@dataclass(slots=True)
class _Signer:
    """One signer's pending txs by nonce. `next_nonce` is its next committed nonce (the
    store's nonces move only in commits, each followed by `Mempool.update`); nonces
    `next_nonce .. ready_end - 1` are all present and executable, the rest are queued."""

    next_nonce: int
    ready_end: int
    txs: dict[int, bytes]

    @property
    def executable(self) -> int:
        return self.ready_end - self.next_nonce

    @property
    def queued(self) -> int:
        return len(self.txs) - self.executable

    def is_executable(self, nonce: int) -> bool:
        return self.next_nonce <= nonce < self.ready_end


class VerifiedCache:
    """Wire hashes of signed txs whose signatures this node already verified, or admitted
    on its validators' vouchers (node/attest.py): each is verified once. Keyed by
    `tx.wire_hash`, which covers the body and every key and signature (the body hash
    covers no signature: keyed by it, one verified variant would pass every other).
    Bounded: the oldest entries go first."""

    def __init__(self, capacity: int = 500_000) -> None:
        self._hashes: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity
        self.checks = 0  # signatures verified here (misses)

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, wire_hash: bytes) -> bool:
        return wire_hash in self._hashes

    def add(self, wire_hash: bytes) -> None:
        self._hashes[wire_hash] = None
        if len(self._hashes) > self._capacity:
            self._hashes.popitem(last=False)

    def discard(self, wire_hashes: Iterable[bytes]) -> None:
        """Forget txs that were committed: no proposal can carry them again (it would be
        a replay, refused on its nonce), so keeping them only costs memory (about 170
        bytes each: a full cache held some 85 MB)."""
        for wire_hash in wire_hashes:
            self._hashes.pop(wire_hash, None)

    def verify(self, tx: SignedTx) -> bool:
        """Whether every signature of `tx` verifies; a yes is remembered. Only for a tx
        that is judged on its own (admission): a block's txs are added once the whole
        block is valid."""
        if tx.wire_hash in self._hashes:
            return True
        self.checks += 1
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
        max_queued_per_signer: int = _DEFAULTS.max_queued_per_signer,
        max_queued: int = _DEFAULTS.max_queued,
        verified: VerifiedCache | None = None,
        rejected_capacity: int = 200_000,
    ) -> None:
        self._store = store
        self._chain_id = chain_id
        self._capacity = capacity
        self._nonce_window = nonce_window
        self._ttl_ms = tx_ttl_ms
        self._skew_ms = max_clock_skew_ms
        self._max_queued_per_signer = max_queued_per_signer
        self._max_queued = max_queued
        self.verified = verified if verified is not None else VerifiedCache()
        # Signers' committed accounts as admission read them, kept until the next commit
        # (`update` clears them): a signer's txs arrive in runs, and each run read and
        # decoded the same record again.
        self._accounts: dict[str, Account | None] = {}
        self._txs: dict[bytes, PendingTx] = {}
        self._by_signer: dict[str, _Signer] = {}
        self._executable = 0
        # Signers with an executable tx: in block-filling order (a signer served by a
        # block goes to the back), and in re-check order (a rotating window).
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._recheck_order: OrderedDict[str, None] = OrderedDict()
        # (created_at, tx hash), a min-heap; entries of txs gone since are skipped.
        self._deadlines: list[tuple[int, bytes]] = []
        self._rejected: OrderedDict[bytes, str] = OrderedDict()
        self._rejected_capacity = rejected_capacity
        # (first, next) sequence numbers of the rejection records in the store.
        self._rejected_seq: tuple[int, int] | None = None
        self.rejections_by_code: dict[str, int] = {}
        self.on_evict: Callable[[bytes, str], None] = lambda tx_hash, code: None

    def __len__(self) -> int:
        return len(self._txs)

    def find_hashes(self, hex_prefix: str, limit: int) -> list[bytes]:
        """Pending tx hashes whose hex starts with `hex_prefix` (a scan: for people
        typing a short hash, not for hot paths)."""
        found = []
        for tx_hash in self._txs:
            if tx_hash.hex().startswith(hex_prefix):
                found.append(tx_hash)
                if len(found) >= limit:
                    break
        return found

    def find_rejected(self, hex_prefix: str, limit: int) -> list[bytes]:
        """Rejected tx hashes (kept records) whose hex starts with `hex_prefix`."""
        return chain.find_by_hex_prefix(self._store, schema.NODE_REJECTED_PREFIX, hex_prefix, limit)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def get_pending(self, tx_hash: bytes) -> PendingTx | None:
        return self._txs.get(tx_hash)

    def get(self, tx_hash: bytes) -> SignedTx | None:
        pending = self._txs.get(tx_hash)
        return pending.tx if pending else None

    def pending_nonces(self, signer: str) -> list[int]:
        entry = self._by_signer.get(signer)
        return sorted(entry.txs) if entry else []

    def nonce_split(self, signer: str) -> tuple[list[int], list[int]]:
        """The signer's pending nonces: (executable, queued)."""
        entry = self._by_signer.get(signer)
        if entry is None:
            return [], []
        queued = sorted(n for n in entry.txs if not entry.is_executable(n))
        return list(range(entry.next_nonce, entry.ready_end)), queued

    def has_executable(self) -> bool:
        """Whether a block could include any pending tx; O(1), for the engine's idling."""
        return self._executable > 0

    @property
    def executable_count(self) -> int:
        return self._executable

    @property
    def queued_count(self) -> int:
        return len(self._txs) - self._executable

    # Admission.
    def _check_before_signatures(self, tx: SignedTx, now_ms: int) -> Account:
        """The admission checks that come before any signature is verified; the signer's
        account. Raises MempoolError."""
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
        # The ledger's timing rule, at this node's clock.
        try:
            check_tx_age(body.created_at, now_ms, self._ttl_ms, self._skew_ms)
        except LedgerError as exc:
            raise MempoolError(exc.code, exc.message) from exc
        if account.frozen:
            raise MempoolError("account_frozen", f"signer {body.signer} is frozen")
        if body.nonce >= account.nonce + self._nonce_window:
            raise MempoolError("bad_nonce", f"nonce {body.nonce} is too far ahead")
        entry = self._by_signer.get(body.signer)
        if entry is not None and body.nonce in entry.txs:
            raise MempoolError("nonce_taken", f"a pending tx already uses nonce {body.nonce}", 409)
        # Only the signer's keys sign (checked before any signature is verified).
        try:
            check_signer_keys(tx, account.get_signing_keys())
        except BadSignature as exc:
            raise MempoolError("bad_signature", f"not signed by {body.signer}'s key") from exc
        return account

    def needs_verification(self, tx: SignedTx, now_ms: int) -> bool:
        """Whether admitting `tx` now would verify its signatures: not verified yet, and
        every check that `check` makes before verifying passes (so that a verifier pool
        spends nothing on a tx that admission would refuse anyway)."""
        if tx.wire_hash in self.verified:
            return False
        try:
            self._check_before_signatures(tx, now_ms)
        except MempoolError:
            return False
        return True

    def check(
        self,
        tx: SignedTx,
        now_ms: int,
        bad_signatures: Collection[bytes] = (),
        vouched: Collection[bytes] = (),
    ) -> Account:
        """Every admission check except the limits (capacity, queues); raises MempoolError.
        Returns the signer's account. `bad_signatures`: wire hashes already found not to
        verify (by a verifier pool), refused without verifying again. `vouched`: wire
        hashes whose signatures the batch's k validators vouched for (node/attest.py), taken as
        verified (and cached as such) once every other check before them passed."""
        account = self._check_before_signatures(tx, now_ms)
        if tx.wire_hash in bad_signatures:
            raise MempoolError("bad_signature", "signature does not verify")
        if tx.wire_hash in vouched:
            self.verified.add(tx.wire_hash)
        elif not self.verified.verify(tx):
            raise MempoolError("bad_signature", "signature does not verify")
        # A payment's KHQR code binds it (the ledger's rule, expiry at this node's clock).
        try:
            for cmd in tx.body.commands:
                check_command_binding(cmd, now_ms)
        except LedgerError as exc:
            raise MempoolError(exc.code, exc.message) from exc
        return account

    def _check_room(self, tx: SignedTx, account: Account) -> None:
        """The limits: capacity, and for a tx behind a nonce gap the queue caps. A tx that
        is executable (or fills the gap) is never refused for the queues."""
        if len(self._txs) >= self._capacity:
            raise MempoolError("mempool_full", "the mempool is full; retry later", 429)
        signer, nonce = tx.body.signer, tx.body.nonce
        entry = self._by_signer.get(signer)
        ready_end = entry.ready_end if entry else account.nonce
        if nonce == ready_end:
            return
        queued = entry.queued if entry else 0
        if queued >= self._max_queued_per_signer:
            raise MempoolError(
                "queue_full",
                f"signer {signer} already has {queued} txs waiting behind a nonce gap; "
                f"send nonce {ready_end} first",
                429,
            )
        if self.queued_count >= self._max_queued:
            raise MempoolError(
                "mempool_queue_full",
                "too many txs wait behind nonce gaps; send the missing nonces or retry later",
                429,
            )

    def _get_account(self, account: str) -> Account | None:
        """The committed account, read from the store once per height. Commits are the
        only writes to accounts, and each is followed by `update`, which forgets them."""
        try:
            return self._accounts[account]
        except KeyError:
            pass
        raw = self._store.get(schema.make_account_key(account))
        found = Account.decode(raw) if raw is not None else None
        if len(self._accounts) >= ACCOUNT_CACHE_SIZE:
            self._accounts.clear()
        self._accounts[account] = found
        return found

    def add(self, tx: SignedTx, raw: bytes, now_ms: int) -> bytes:
        """Check and persist one tx; returns its hash or raises MempoolError."""
        [(tx_hash, error)] = self.add_many([(tx, raw)], now_ms)
        if error is not None:
            raise error
        return tx_hash

    def add_many(
        self,
        items: Iterable[tuple[SignedTx, bytes]],
        now_ms: int,
        *,
        persist: bool = True,
        bad_signatures: Collection[bytes] = (),
        vouched: Collection[bytes] = (),
    ) -> list[tuple[bytes, MempoolError | None]]:
        """Admit a batch with one store batch; per-tx outcome in order. `persist` False
        (gossiped txs) keeps them in memory only: an acknowledged tx is in the store of
        the node that acknowledged it, which gossips it again after a restart.
        `bad_signatures` and `vouched` as in `check`."""
        outcomes: list[tuple[bytes, MempoolError | None]] = []
        admitted: list[PendingTx] = []
        for tx, raw in items:
            try:
                account = self.check(tx, now_ms, bad_signatures, vouched)
                self._check_room(tx, account)
            except MempoolError as exc:
                outcomes.append((tx.hash, exc))
                continue
            pending = PendingTx(tx, raw, now_ms, persist)
            self._insert(pending, account.nonce)
            admitted.append(pending)
            outcomes.append((tx.hash, None))
        if admitted and persist:
            try:
                with self._store.atomic_batch(sync=False) as batch:
                    for p in admitted:
                        batch.put(schema.make_mempool_key(p.tx.hash), p.raw)
            except StoreError as exc:
                # Not persisted, so not admitted: nothing of them stays (a tx kept here
                # would be proposed after its client heard it was not taken).
                for p in reversed(admitted):
                    self._remove(p.tx.hash)
                failed = MempoolError("store_error", f"not admitted: {exc.message}", 503)
                outcomes = [(h, failed if e is None else e) for h, e in outcomes]
        return outcomes

    # The executable/queued split.
    def _insert(self, pending: PendingTx, next_nonce: int | None = None) -> None:
        """Keep a checked tx; `next_nonce` is its signer's committed one (read if not given)."""
        body = pending.tx.body
        entry = self._by_signer.get(body.signer)
        if entry is None:
            if next_nonce is None:
                account = self._get_account(body.signer)
                next_nonce = account.nonce if account else 0
            entry = self._by_signer[body.signer] = _Signer(next_nonce, next_nonce, {})
        self._txs[pending.tx.hash] = pending
        entry.txs[body.nonce] = pending.tx.hash
        heapq.heappush(self._deadlines, (body.created_at, pending.tx.hash))
        if body.nonce == entry.ready_end:
            self._extend(entry)
        self._settle(body.signer, entry)

    def _extend(self, entry: _Signer) -> None:
        """Promote the queued txs that now follow the executable run without a gap."""
        start = entry.ready_end
        while entry.ready_end in entry.txs:
            entry.ready_end += 1
        self._executable += entry.ready_end - start

    def _settle(self, signer: str, entry: _Signer) -> None:
        """Keep the ready orders and the signer map in step with `entry`."""
        if entry.executable > 0:
            if signer not in self._ready:
                self._ready[signer] = None
                self._recheck_order[signer] = None
        elif signer in self._ready:
            del self._ready[signer]
            del self._recheck_order[signer]
        if not entry.txs:
            del self._by_signer[signer]

    def _remove(self, tx_hash: bytes) -> PendingTx | None:
        """Forget one tx; its executable successors become queued (they follow a gap now)."""
        pending = self._txs.pop(tx_hash, None)
        if pending is None:
            return None
        body = pending.tx.body
        entry = self._by_signer[body.signer]
        del entry.txs[body.nonce]
        if entry.is_executable(body.nonce):
            self._executable -= entry.ready_end - body.nonce
            entry.ready_end = body.nonce
        self._settle(body.signer, entry)
        return pending

    def _advance(self, signer: str, entry: _Signer, next_nonce: int) -> list[bytes]:
        """The signer's committed nonce moved to `next_nonce`: forget the txs below it
        (returned) and promote what now follows without a gap. Costs what moved, not the
        signer's whole queue."""
        if next_nonce <= entry.next_nonce:
            return []
        if next_nonce - entry.next_nonce <= len(entry.txs):
            below = [n for n in range(entry.next_nonce, next_nonce) if n in entry.txs]
        else:
            below = [n for n in entry.txs if n < next_nonce]
        hashes = [entry.txs.pop(n) for n in below]
        for tx_hash in hashes:
            del self._txs[tx_hash]
        self._executable -= max(0, min(next_nonce, entry.ready_end) - entry.next_nonce)
        entry.next_nonce = next_nonce
        entry.ready_end = max(entry.ready_end, next_nonce)
        self._extend(entry)
        self._settle(signer, entry)
        return hashes

    def _trim(self, signer: str) -> list[tuple[bytes, str]]:
        """Drop the signer's highest queued nonces beyond the queue caps (after txs were
        demoted to queued, e.g. when the head of a long run failed)."""
        entry = self._by_signer.get(signer)
        if entry is None:
            return []
        excess = max(
            entry.queued - self._max_queued_per_signer, self.queued_count - self._max_queued
        )
        if excess <= 0:
            return []
        queued = sorted((n for n in entry.txs if not entry.is_executable(n)), reverse=True)
        dropped = [entry.txs[n] for n in queued[:excess]]
        for tx_hash in dropped:
            self._remove(tx_hash)
        return [(tx_hash, "queue_full") for tx_hash in dropped]

    # Block filling.
    def candidates(self, max_txs: int, max_bytes: int) -> Iterator[SignedTx]:
        """Executable txs within limits: round-robin over signers (each signer's in nonce
        order), signers in ready order, so no signer's backlog crowds out another's tx.
        Execution on the block's overlay decides which fit: a tx that fails ends its
        signer's run for the block (its successors fail on their nonce). Consume it before
        the mempool changes."""
        count = size = 0
        turn: Iterable[_Signer] = (self._by_signer[s] for s in self._ready)
        depth = 0
        while True:
            again: list[_Signer] = []
            for entry in turn:
                nonce = entry.next_nonce + depth
                pending = self._txs[entry.txs[nonce]]
                size += len(pending.raw)
                if count >= max_txs or size > max_bytes:
                    return
                count += 1
                yield pending.tx
                if nonce + 1 < entry.ready_end:
                    again.append(entry)
            if not again:
                return
            turn, depth = again, depth + 1

    def all_raw(self) -> list[bytes]:
        return [p.raw for p in self._txs.values()]

    # After a commit.
    def update(
        self,
        included: Iterable[bytes],
        touched_signers: Iterable[str],
        ctx: BlockContext,
    ) -> list[tuple[bytes, str]]:
        """Drop included txs, then re-check touched signers' queues; returns evictions
        (tx hash, code)."""
        self._accounts.clear()  # the block changed the committed accounts
        dropped: set[bytes] = set()
        stored: set[bytes] = set()
        served: dict[str, None] = {}
        for tx_hash in included:
            pending = self._txs.get(tx_hash)
            if pending is not None:
                dropped.add(tx_hash)
                if pending.persisted:
                    stored.add(tx_hash)
                served[pending.tx.body.signer] = None
        signers = set(touched_signers) | set(served) | self._sample_signers()
        evicted = self._recheck(signers, ctx, dropped)
        for tx_hash in dropped:
            pending = self._remove(tx_hash)
            if pending is not None:  # an included tx whose nonce the state did not pass
                evicted += self._trim(pending.tx.body.signer)
        for signer in served:
            if signer in self._ready:
                self._ready.move_to_end(signer)
        evicted += self._expire(ctx.time_ms)
        deletes = stored | {h for h, _ in evicted}
        if deletes:
            with self._store.atomic_batch(sync=False) as batch:
                for tx_hash in deletes:
                    batch.delete(schema.make_mempool_key(tx_hash))
                # `ctx` is the next height's: these were found failing after the block below
                for tx_hash, code in evicted:
                    self._persist_rejection(batch, tx_hash, code, ctx.height - 1)
        for tx_hash, code in evicted:
            self._record_rejection(tx_hash, code)
        return [(tx_hash, split_reason(reason)[0]) for tx_hash, reason in evicted]

    def _sample_signers(self) -> set[str]:
        """Signers whose queue head is re-checked although the block did not touch them:
        a tx that failed in another node's proposal is left out of the block, so only a
        re-check tells this node to report it rejected. Only signers with an executable
        tx have a head to check; all of them while few, else a rotating window so the
        cost per block stays bounded."""
        window = list(islice(self._recheck_order, RECHECK_WINDOW))
        for signer in window:
            self._recheck_order.move_to_end(signer)
        return set(window)

    def _recheck(
        self, signers: set[str], ctx: BlockContext, included: set[bytes]
    ) -> list[tuple[bytes, str]]:
        """Move each signer to its committed nonce (txs below it are gone: `included`
        quietly, others as `bad_nonce`), then try its head on the new state."""
        evicted: list[tuple[bytes, str]] = []
        state = State(self._store)
        for signer in signers:
            entry = self._by_signer.get(signer)
            if entry is None:
                continue
            account = state.get_account(signer)
            if account is None:
                for tx_hash in list(entry.txs.values()):
                    self._remove(tx_hash)
                    if tx_hash not in included:
                        evicted.append((tx_hash, "unknown_account"))
                continue
            for tx_hash in self._advance(signer, entry, account.nonce):
                if tx_hash not in included:
                    evicted.append((tx_hash, "bad_nonce"))
            head = entry.txs.get(account.nonce)
            if head is None:
                continue
            result = apply_tx(state, ctx, self._txs[head].tx)
            if result.code is not None:
                self._remove(head)
                evicted.append((head, make_reason(result.code, result.message)))
                evicted += self._trim(signer)
        return evicted

    def _expire(self, now_ms: int) -> list[tuple[bytes, str]]:
        cutoff = now_ms - self._ttl_ms
        expired: list[tuple[bytes, str]] = []
        signers: dict[str, None] = {}
        while self._deadlines and self._deadlines[0][0] < cutoff:
            _, tx_hash = heapq.heappop(self._deadlines)
            pending = self._remove(tx_hash)
            if pending is not None:
                expired.append((tx_hash, "expired"))
                signers[pending.tx.body.signer] = None
        for signer in signers:
            expired += self._trim(signer)
        # Entries of txs gone otherwise are dropped once they outnumber the live ones.
        if len(self._deadlines) > 2 * len(self._txs) + 1024:
            self._deadlines = [(p.tx.body.created_at, h) for h, p in self._txs.items()]
            heapq.heapify(self._deadlines)
        return expired

    def reject(self, tx_hash: bytes, reason: str, height: int = 0) -> None:
        """Evict one pending tx that failed in a proposal's execution at `height`
        (`reason`: a code, or `make_reason(code, message)`)."""
        pending = self._remove(tx_hash)
        if pending is None:
            return
        evicted = [(tx_hash, reason), *self._trim(pending.tx.body.signer)]
        with self._store.atomic_batch(sync=False) as batch:
            for evicted_hash, evicted_code in evicted:
                batch.delete(schema.make_mempool_key(evicted_hash))
                self._persist_rejection(batch, evicted_hash, evicted_code, height)
        for evicted_hash, evicted_code in evicted:
            self._record_rejection(evicted_hash, evicted_code)

    def _persist_rejection(
        self, batch: WriteBatch, tx_hash: bytes, reason: str, height: int
    ) -> None:
        """Write why a tx was rejected, in the order of rejections; beyond
        `rejected_capacity` records the oldest go (a customer sending failing txs for
        ever cannot fill the disk with them)."""
        if self._rejected_seq is None:
            self._rejected_seq = self._load_rejected_seq()
        first, end = self._rejected_seq
        batch.put(schema.make_node_rejected_key(tx_hash), pack([reason, height]))
        batch.put(schema.make_node_rejected_height_key(height, tx_hash), b"")
        batch.put(schema.make_node_rejected_order_key(end), tx_hash)
        end += 1
        while end - first > self._rejected_capacity:
            order_key = schema.make_node_rejected_order_key(first)
            old = self._store.get(order_key)
            if old is not None:
                record = self._read_rejection(old)
                if record is not None:
                    batch.delete(schema.make_node_rejected_height_key(record[1], old))
                batch.delete(schema.make_node_rejected_key(old))
            batch.delete(order_key)
            first += 1
        self._rejected_seq = (first, end)

    def _load_rejected_seq(self) -> tuple[int, int]:
        prefix = schema.NODE_REJECTED_ORDER_PREFIX
        first = next(self._store.iterate(prefix), None)
        last = next(self._store.iterate(prefix, reverse=True), None)
        if first is None or last is None:
            return 0, 0
        return schema.decode_height(first[0][len(prefix) :]), schema.decode_height(
            last[0][len(prefix) :]
        ) + 1

    def _record_rejection(self, tx_hash: bytes, reason: str) -> None:
        """After `_persist_rejection`: the code is kept in memory, the message only in
        the store (read by `rejection_message`)."""
        code = split_reason(reason)[0]
        self.on_evict(tx_hash, code)
        self._rejected[tx_hash] = code
        self.rejections_by_code[code] = self.rejections_by_code.get(code, 0) + 1
        if len(self._rejected) > self._rejected_capacity:
            self._rejected.popitem(last=False)

    def rejection_of(self, tx_hash: bytes) -> str | None:
        code = self._rejected.get(tx_hash)
        if code is not None:
            return code
        record = self._read_rejection(tx_hash)
        return split_reason(record[0])[0] if record is not None else None

    def rejection_message(self, tx_hash: bytes) -> str:
        """What failed, for a rejected tx ("" when the rejection has no details)."""
        record = self._read_rejection(tx_hash)
        return split_reason(record[0])[1] if record is not None else ""

    def rejections_at(self, height: int, limit: int) -> list[tuple[bytes, str, str]]:
        """(tx hash, code, message) of the txs this node found rejected at `height`: in
        building or judging that block, or in re-checking its mempool after it."""
        prefix = schema.make_node_rejected_height_prefix(height)
        out = []
        for key, _ in islice(self._store.iterate(prefix), limit):
            tx_hash = key[len(prefix) :]
            record = self._read_rejection(tx_hash)
            if record is not None:
                out.append((tx_hash, *split_reason(record[0])))
        return out

    def _read_rejection(self, tx_hash: bytes) -> tuple[str, int] | None:
        """(reason, height) as recorded; None when not recorded (or unreadable)."""
        raw = self._store.get(schema.make_node_rejected_key(tx_hash))
        if raw is None:
            return None
        try:
            reason, height = unpack(raw)
        except (LedgerError, ValueError, TypeError):
            return None
        return (str(reason), int(height)) if isinstance(height, int) else None

    # Restart.
    def load(self, now_ms: int) -> int:
        """Re-admit persisted txs after a restart, each signer's in nonce order (so that
        its run is executable again, not queued behind a gap of load order); drops
        committed, now-invalid and over-limit ones."""
        stale: list[bytes] = []
        found: list[tuple[SignedTx, bytes, bytes]] = []
        for key, raw in self._store.iterate(schema.MEMPOOL_PREFIX):
            try:
                found.append((SignedTx.decode(raw), raw, key))
            except LedgerError as exc:
                log.info("dropping persisted tx %s: %s", key[-32:].hex(), exc)
                stale.append(key)
        found.sort(key=lambda item: (item[0].body.signer, item[0].body.nonce))
        loaded = 0
        for tx, raw, key in found:
            try:
                account = self.check(tx, now_ms)
                self._check_room(tx, account)
            except (LedgerError, MempoolError) as exc:
                log.info("dropping persisted tx %s: %s", key[-32:].hex(), exc)
                stale.append(key)
                continue
            self._insert(PendingTx(tx, raw, now_ms), account.nonce)
            loaded += 1
        if stale:
            with self._store.atomic_batch(sync=False) as batch:
                for key in stale:
                    batch.delete(key)
        return loaded
