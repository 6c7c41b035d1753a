"""One bank's node: store, genesis, mempool, P2P and the consensus engine, wired together.

`Node` owns the resources; `node.app.create_app(config)` exposes it over HTTP and starts
and stops it with the aiohttp application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from consensus.validators import ValidatorSet
from genesis.load import genesis_hash, load_genesis_file, load_genesis_into
from ledger import chain
from ledger.block import Block
from ledger.crypto import PrivateKey
from ledger.errors import LedgerError
from ledger.schema import BANK_PREFIX
from ledger.state import Bank, State
from ledger.store.leveldb import LevelDBStore
from ledger.transition import BlockResult
from ledger.tx import SignedTx, compute_next_nonce
from node import messages as msg
from node.attest import (
    Attestations,
    Threshold,
    WaitingBatch,
    compute_batch_digest,
    encode_bitmap,
)
from node.config import NodeConfig, parse_peer
from node.engine import Engine, PeerGone, PeerMessage, _StatusTick
from node.idempotency import IdempotencyLog
from node.keyfile import read_key_file
from node.mempool import Mempool, MempoolError
from node.metrics import Metrics
from node.p2p import MessageRouter, P2PParams, PeerManager
from node.sandbox import Sandbox
from node.verifier import Verifier

log = logging.getLogger("bakong.node")

GOSSIP_FLUSH_S = 0.005
GOSSIP_MAX_BATCH = 2000
# A compact proposal naming held txs waits at most this part of the propose timeout for
# their batches (`Node._await_held`): a small part of the round, whose timeout still runs.
AWAIT_HELD_FRACTION = 0.1
STATUS_INTERVAL_S = 1.0
ADMIT_SLICE = 100
# With verifier workers: fewer, larger slices, each one round trip to the workers.
POOLED_SLICE = 250
# Peer messages waiting for consensus beyond which peers' readers wait.
ENGINE_BACKLOG = 2_000
GET_BLOCKS_INTERVAL_S = 0.05


def chunk_gossip(raws: list[bytes], max_bytes: int) -> Iterator[list[bytes]]:
    """`raws` in runs of at most GOSSIP_MAX_BATCH txs and `max_bytes` (half a frame: a
    frame also holds each item's length), so that no gossip frame exceeds
    `p2p.max_frame_bytes`, which 2,000 txs of up to 16 KB would."""
    chunk: list[bytes] = []
    size = 0
    for raw in raws:
        if chunk and (len(chunk) == GOSSIP_MAX_BATCH or size + len(raw) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw)
    if chunk:
        yield chunk


class Node:
    def __init__(self, config: NodeConfig, clock_ms: Callable[[], int] | None = None) -> None:
        self.config = config
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.genesis = load_genesis_file(config.genesis_path)
        self.chain_id = self.genesis.chain_id
        self.node_key = read_key_file(config.node_key_path)
        path = config.operator_key_path
        self.operator_key: PrivateKey | None = read_key_file(path) if path else None
        config.data_path.mkdir(parents=True, exist_ok=True)
        self.store = LevelDBStore(config.data_path / "chain.db")
        load_genesis_into(self.store, self.genesis)
        self.genesis_hash = genesis_hash(self.genesis)
        self.metrics = Metrics()
        # This node's own prometheus_client registry, made at the first scrape.
        self.metrics_registry: CollectorRegistry | None = None
        self.mempool = Mempool(
            self.store,
            self.chain_id,
            capacity=config.mempool.capacity,
            nonce_window=config.mempool.nonce_window,
            max_queued_per_signer=config.mempool.max_queued_per_signer,
            max_queued=config.mempool.max_queued,
            tx_ttl_ms=self.genesis.params.tx_ttl_ms,
            max_clock_skew_ms=self.genesis.params.max_clock_skew_ms,
        )
        self.mempool.on_evict = self._on_evict
        self.verifier = Verifier(config.mempool.verify_workers)
        router = MessageRouter()
        self.p2p = PeerManager(
            self.node_key,
            self.chain_id,
            config.p2p.host,
            config.p2p.port,
            [parse_peer(p) for p in config.p2p.peers],
            self.is_admitted,
            router,
            on_peer_connected=self._on_peer_connected,
            on_peer_disconnected=lambda peer: self.engine.submit(PeerGone(peer)),
            params=P2PParams.from_config(config.p2p),
        )
        self.engine = Engine(
            store=self.store,
            chain_id=self.chain_id,
            node_key=self.node_key,
            config=config.consensus,
            mempool=self.mempool,
            metrics=self.metrics,
            send=lambda peer, kind, payload: self.p2p.send(peer, kind, payload),
            broadcast=self._broadcast_consensus,
            on_commit=self._on_commit,
            clock_ms=self.clock_ms,
            max_clock_skew_ms=self.genesis.params.max_clock_skew_ms,
            on_fatal=self._on_engine_failure,
            max_frame_bytes=config.p2p.max_frame_bytes,
        )
        # Set when consensus stopped on an error of the node's own (its store): the
        # process must exit non-zero; a restart recovers from the store.
        self.failure: BaseException | None = None
        self.failed: asyncio.Event | None = None
        for kind in (
            msg.PROPOSAL,
            msg.COMPACT_PROPOSAL,
            msg.GET_PROPOSAL,
            msg.VOTE,
            msg.STATUS,
            msg.BLOCKS,
        ):
            router.register(kind, self._to_engine(kind))
        router.register(msg.TX_BATCH, self._on_tx_batch)
        router.register(msg.TX_RESEND, self._on_tx_resend)
        router.register(msg.ATTEST, self._on_attest)
        router.register(msg.GET_BLOCKS, self._on_get_blocks)
        self.waiters: dict[bytes, list[asyncio.Future[dict[str, Any]]]] = {}
        self.admitted_at: OrderedDict[bytes, int] = OrderedDict()
        self._gossip: list[bytes] = []
        self._served_blocks_at: dict[bytes, float] = {}
        self._gossip_timer: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # Gossiped batches waiting for validators to vouch for them (node/attest.py): one
        # event per waiting digest, and each origin's last batch (admitted in order).
        vouchers = config.mempool.vouchers
        threshold: Threshold = "one_correct" if vouchers == "one_correct" else "quorum"
        self.attestations = Attestations(threshold, config.mempool.max_vouch_waiting)
        self._vouched: dict[tuple[bytes, bytes], asyncio.Event] = {}
        self._origin_tail: dict[bytes, asyncio.Task[None]] = {}
        self._vouch_tasks: set[asyncio.Task[None]] = set()
        # Compact proposals whose judging waits for the held txs they name, woken to look
        # again each time txs are admitted or a held batch's wait ends.
        self._awaiting: set[asyncio.Task[None]] = set()
        self._batch_done = asyncio.Event()
        self._stopping = False
        self.engine.waiting_tx = self.attestations.lookup
        self.engine.await_held = self._await_held
        self.engine.flush_gossip = self._flush_gossip
        self.idempotency = IdempotencyLog(self.store)  # the back office's Idempotency-Keys
        openapi = config.openapi
        self.sandbox = Sandbox(  # the Open API sandbox's registrations, tokens, deeplinks
            self.store,
            self.clock_ms,
            token_ttl_ms=openapi.token_ttl_ms,
            max_registrations=openapi.max_registrations,
            max_links=openapi.max_deeplinks,
        )

    # Lifecycle.
    def _on_engine_failure(self, exc: BaseException) -> None:
        self.failure = exc
        if self.failed is not None:
            self.failed.set()

    async def start(self) -> None:
        self.failed = asyncio.Event()
        loaded = self.mempool.load(self.clock_ms())
        if loaded:
            log.info("restored %d pending txs from the store", loaded)
            self._gossip.extend(self.mempool.all_raw())
        self.verifier.start()
        await self.p2p.start()
        self._tasks.append(asyncio.create_task(self.engine.run(), name="consensus"))
        self._tasks.append(asyncio.create_task(self._status_loop(), name="status"))
        if self._gossip:
            self._schedule_gossip()
        log.info(
            "node %s started: chain %s height %d validator=%s",
            self.config.name,
            self.chain_id,
            self.engine.height,
            self.engine.is_validator(),
        )

    async def stop(self) -> None:
        self.engine.stop()
        for task in self._tasks:
            task.cancel()
        self._stopping = True  # no batch is held from now on
        waiting = [*self._vouch_tasks, *self._awaiting]
        for task in waiting:
            task.cancel()
        await asyncio.gather(*self._tasks, *waiting, return_exceptions=True)
        await self.p2p.stop()
        self.verifier.close()
        for futures in self.waiters.values():
            for future in futures:
                future.cancel()
        self.store.close()
        log.info("node %s stopped", self.config.name)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self.engine.submit(_StatusTick())

    # Admission of registered node keys.
    def is_admitted(self, public_key: bytes) -> bool:
        return public_key in self.registered_node_keys()

    def registered_node_keys(self) -> set[bytes]:
        return {Bank.decode(raw).node_key for _, raw in self.store.iterate(BANK_PREFIX)}

    # Transactions from clients.
    def submit_tx(self, raw: bytes) -> bytes:
        """Decode, check and persist one tx; raises MempoolError (or CodecError)."""
        tx = SignedTx.decode(raw)
        try:
            tx_hash = self.mempool.add(tx, raw, self.clock_ms())
        except MempoolError as exc:
            self.metrics.refuse(exc.code)
            raise
        self._admitted(tx_hash, raw)
        self._notify_held_waiters()
        return tx_hash

    async def submit_many(self, raws: list[bytes]) -> list[dict[str, Any]]:
        """Admit a client's batch a slice at a time (yielding to consensus in between);
        one result per tx, in order."""
        out: list[dict[str, Any]] = [{} for _ in raws]
        decoded: list[tuple[SignedTx, bytes]] = []
        slots: list[int] = []
        for slot, result in enumerate(await self._decode(raws)):
            if isinstance(result, LedgerError):
                out[slot] = {"error": {"code": result.code, "message": result.message}}
            else:
                decoded.append((result, raws[slot]))
                slots.append(slot)
        outcomes = await self._admit(decoded, persist=True)
        for slot, (tx, _), (tx_hash, error) in zip(slots, decoded, outcomes, strict=True):
            if error is None:
                out[slot] = {"hash": tx_hash.hex()}
            else:
                self.metrics.refuse(error.code)
                out[slot] = {
                    "hash": tx.hash.hex(),
                    "error": {"code": error.code, "message": error.message},
                }
        return out

    async def _decode(self, raws: list[bytes]) -> list[SignedTx | LedgerError]:
        """Each raw tx decoded (or why not), yielding between slices: a batch of 10,000
        would otherwise hold the event loop for about 0.15 s."""
        out: list[SignedTx | LedgerError] = []
        for start in range(0, len(raws), ADMIT_SLICE):
            for raw in raws[start : start + ADMIT_SLICE]:
                try:
                    out.append(SignedTx.decode(raw))
                except LedgerError as exc:
                    out.append(exc)
            await asyncio.sleep(0)
        return out

    async def _admit(
        self, items: list[tuple[SignedTx, bytes]], *, persist: bool
    ) -> list[tuple[bytes, MempoolError | None]]:
        """`Mempool.add_many` a slice at a time, yielding between slices so that consensus
        messages are not stuck behind thousands of signature checks. With verifier workers,
        every slice's signatures go to the workers at once, and each slice is admitted as
        its verdicts arrive: the event loop checks and writes one slice while the workers
        verify the next.

        `persist` (a client's txs): each admitted tx is queued for gossip before the loop
        yields. A proposal built in that yield may name it, and the flush before the
        proposal (`flush_gossip`) must send it; queued later, the proposal overtook it and
        peers fetched the full block."""
        size = POOLED_SLICE if self.verifier.workers else ADMIT_SLICE
        slices = [items[i : i + size] for i in range(0, len(items), size)]
        verdicts = [self._verify_ahead(part) for part in slices] if self.verifier.workers else []
        outcomes: list[tuple[bytes, MempoolError | None]] = []
        for index, part in enumerate(slices):
            bad = await verdicts[index] if verdicts else set()
            admitted = self.mempool.add_many(
                part, self.clock_ms(), persist=persist, bad_signatures=bad
            )
            if persist:
                for (tx_hash, error), (_, raw) in zip(admitted, part, strict=True):
                    if error is None:
                        self._admitted(tx_hash, raw)
            outcomes.extend(admitted)
            self._notify_held_waiters()
            await asyncio.sleep(0)
        return outcomes

    def _verify_ahead(self, items: list[tuple[SignedTx, bytes]]) -> asyncio.Task[set[bytes]]:
        """Verify in the workers the signatures that admitting `items` would verify (now:
        the checks that come first are made at once); the good ones enter the verified
        cache, the task's result is the wire hashes of the bad ones."""
        now_ms = self.clock_ms()
        fresh = [tx for tx, _ in items if self.mempool.needs_verification(tx, now_ms)]

        async def verify() -> set[bytes]:
            bad: set[bytes] = set()
            for tx, ok in zip(fresh, await self.verifier.verify(fresh), strict=True):
                if ok:
                    self.mempool.verified.add(tx.wire_hash)
                else:
                    bad.add(tx.wire_hash)
            return bad

        return asyncio.ensure_future(verify())

    def _admitted(self, tx_hash: bytes, raw: bytes) -> None:
        self.metrics.received_txs += 1
        self.admitted_at[tx_hash] = self.clock_ms()
        if len(self.admitted_at) > 200_000:
            self.admitted_at.popitem(last=False)
        self._gossip.append(raw)
        self._schedule_gossip()
        self.engine.wake()

    def _broadcast_consensus(self, kind: int, payload: Any) -> int:
        """A consensus message to every peer. A compact proposal names txs by id, so it
        goes out behind the gossip queued before it (the engine has this node's
        ungossiped txs queued first, `flush_gossip`): reliable frames otherwise overtake
        gossip, and a peer that read the proposal before the txs it names asked for the
        full block. (Measured on a 4 + 1 testnet: about a third of the compact proposals.)"""
        return self.p2p.broadcast(kind, payload, behind_droppable=kind == msg.COMPACT_PROPOSAL)

    def _schedule_gossip(self) -> None:
        if self._gossip_timer is None:
            self._gossip_timer = asyncio.get_running_loop().call_later(
                GOSSIP_FLUSH_S, self._flush_gossip
            )

    def _flush_gossip(self) -> None:
        """Broadcast the txs admitted since the last flush: on its timer, or at once
        before a proposal (`Engine.flush_gossip`), which cancels the timer."""
        if self._gossip_timer is not None:
            self._gossip_timer.cancel()
            self._gossip_timer = None
        batch, self._gossip = self._gossip, []
        for chunk in chunk_gossip(batch, self.config.p2p.max_frame_bytes // 2):
            self.p2p.broadcast(msg.TX_BATCH, chunk, droppable=True)

    # P2P handlers.
    def _to_engine(self, kind: int) -> Callable[[bytes, Any], Awaitable[None]]:
        async def handler(peer: bytes, payload: Any) -> None:
            # Backpressure: while consensus is behind on its queue, this peer's reader
            # waits (and TCP slows the peer) instead of queueing without bound.
            while self.engine.queue.qsize() >= ENGINE_BACKLOG:
                await asyncio.sleep(0.005)
            self.engine.submit(PeerMessage(peer, kind, payload))

        return handler

    async def _on_tx_batch(self, peer: bytes, payload: Any) -> None:
        """Admit gossiped txs (`_admit`: a slice at a time). A follower (no
        validator, trusting commits) takes none: it never proposes, and executes blocks
        as their certificates decide them.

        A validator shares the verification (node/attest.py): as one of a batch's k
        verifiers it admits the batch and attests to the validators that hold it which
        of its txs' signatures it believes; otherwise it holds the batch until its k
        vouch for it, or its wait ends. A held origin's batches are admitted in arrival
        order; the peer's reader never waits for that."""
        gossiped = await self._decode_gossip(payload)
        if gossiped is None:
            return
        count, items = gossiped
        validators = self.engine.get_validators(self.engine.height + 1)
        me = self.node_key.public_key
        if items and len(items) == count and validators.get_index(me) is not None:
            digest = compute_batch_digest([tx.wire_hash for tx, _ in items])
            designated = self.attestations.designated(validators, peer, digest)
            if me in designated:
                outcomes = await self._admit(items, persist=False)
                # Believed: admitted, or refused after the check (a full queue); a tx
                # refused before it (a junk one, a used nonce) was never verified.
                verified = self.mempool.verified
                believed = encode_bitmap([tx.wire_hash in verified for tx, _ in items])
                self._attest(validators, (peer, me, *designated), digest, believed)
                self._wake_if_admitted(outcomes)
                return
            if self.attestations.is_held(peer, digest):
                return  # a repeat of a batch held already
            if (
                self.config.mempool.shared_verification
                and not self._stopping
                and not self._is_behind()
            ):
                batch = self.attestations.wait(validators, peer, digest, items)
                if batch is not None:
                    self._hold(batch)
                    return
        self._wake_if_admitted(await self._admit(items, persist=False))

    async def _on_tx_resend(self, peer: bytes, payload: Any) -> None:
        """Pending txs a peer sends on connecting (to this node alone, so no one else
        will attest them): admitted as gossip, every signature verified here."""
        gossiped = await self._decode_gossip(payload)
        if gossiped is not None:
            self._wake_if_admitted(await self._admit(gossiped[1], persist=False))

    async def _decode_gossip(self, payload: Any) -> tuple[int, list[tuple[SignedTx, bytes]]] | None:
        """How many txs a gossiped batch carries, and those that decode; None on a
        follower, which takes none."""
        if self.engine.follows():
            self.metrics.ignored_gossip_batches += 1
            return None
        raws = msg.parse_tx_batch(payload)
        decoded = await self._decode(raws)
        items = [
            (tx, raw) for tx, raw in zip(decoded, raws, strict=True) if isinstance(tx, SignedTx)
        ]
        return len(raws), items

    def _hold(self, batch: WaitingBatch) -> None:
        """Wait for the batch's vouchers in a task, after the origin's previous batch."""
        self._vouched[batch.digest, batch.origin] = asyncio.Event()
        task = asyncio.create_task(
            self._admit_when_vouched(batch, self._origin_tail.get(batch.origin)),
            name="vouched-admission",
        )
        self._origin_tail[batch.origin] = task
        self._vouch_tasks.add(task)
        task.add_done_callback(lambda done: self._forget_task(batch.origin, done))

    def _await_held(self, tx_hashes: list[bytes], resume: Callable[[], None]) -> bool:
        """`Engine.await_held`: call `resume` once each of `tx_hashes` is pending in the
        mempool or no longer held, or after `AWAIT_HELD_FRACTION` of the propose timeout
        (at most `vouch_wait_ms`), whichever comes first; False when none is held. A held
        batch's vouchers come within milliseconds of a proposal naming it, mostly; the
        judge would otherwise verify each of its txs here.

        The condition is the txs', not one batch's: another peer's copy of a batch, held
        under another digest that no one will vouch for, must not keep the proposal
        waiting once the origin's own batch is in."""
        if self._stopping or all(self._settled(tx_hash) for tx_hash in tx_hashes):
            return False
        limit_ms = min(
            self.config.mempool.vouch_wait_ms,
            self.config.consensus.timeout_propose_ms * AWAIT_HELD_FRACTION,
        )

        async def wait_then_resume() -> None:
            started = time.monotonic()
            deadline = started + limit_ms / 1000
            while not all(self._settled(tx_hash) for tx_hash in tx_hashes):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_done.wait(), left)
            self.metrics.awaited_wait.observe(time.monotonic() - started)
            resume()

        waiter = asyncio.create_task(wait_then_resume(), name="await-held")
        self._awaiting.add(waiter)
        waiter.add_done_callback(self._awaiting.discard)
        return True

    def _notify_held_waiters(self) -> None:
        """Wake the proposals waiting for held txs (`_await_held`) to look again: a held
        batch's wait ended, or txs were admitted another way (a client's, a batch this
        node verifies itself) while a peer's copy of them is still held."""
        if self._awaiting:
            self._batch_done.set()
            self._batch_done = asyncio.Event()

    def _settled(self, tx_hash: bytes) -> bool:
        """A tx a proposal names is pending here, or held no longer (admitted or refused)."""
        return tx_hash in self.mempool or self.attestations.lookup(tx_hash) is None

    def _is_behind(self) -> bool:
        """Peers claim heights more than 2 past this node's: the validator set it counts
        vouchers against may be stale (a change applies 2 heights after it commits), so
        it verifies gossip itself until it caught up. (A peer that claims falsely only
        makes this node verify more.)"""
        return self.engine.sync.get_target(time.monotonic()) > self.engine.height + 2

    def _wake_if_admitted(self, outcomes: list[tuple[bytes, MempoolError | None]]) -> None:
        if any(error is None for _, error in outcomes):
            self.engine.wake()

    def _forget_task(self, origin: bytes, task: asyncio.Task[None]) -> None:
        self._vouch_tasks.discard(task)
        if self._origin_tail.get(origin) is task:
            del self._origin_tail[origin]
        if not task.cancelled() and task.exception() is not None:
            log.error("admitting a held gossip batch failed", exc_info=task.exception())

    def _attest(
        self, validators: ValidatorSet, skip: tuple[bytes, ...], digest: bytes, believed: bytes
    ) -> None:
        """Tell the validators that hold the batch (not the origin and its verifiers)
        which of its txs' signatures this node believes (verified here, or vouched for
        to it)."""
        for validator in validators.validators:
            if validator.public_key not in skip:
                self.p2p.send(validator.public_key, msg.ATTEST, [digest, believed])
        self.metrics.attested_batches += 1

    async def _admit_when_vouched(
        self, batch: WaitingBatch, earlier: asyncio.Task[None] | None
    ) -> None:
        """Admit a held batch once its k validators vouch for it: the txs all of them
        believe without verifying their signatures, the others verified here; all of
        them verified here if the vouchers do not come within `vouch_wait_ms`."""
        event = self._vouched[batch.digest, batch.origin]
        try:
            validators = self.engine.get_validators(self.engine.height + 1)
            if not self.attestations.is_vouched(validators, batch):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.config.mempool.vouch_wait_ms / 1000)
            if earlier is not None and not earlier.done():
                await asyncio.wait([earlier])
            validators = self.engine.get_validators(self.engine.height + 1)
            member = validators.get_index(self.node_key.public_key) is not None
            current = member and not self._is_behind()
            trusted = self.attestations.trusted(validators, batch) if current else set()
            if not trusted:
                self.metrics.unvouched_batches += 1
                self._wake_if_admitted(await self._admit(batch.items, persist=False))
                return
            self.metrics.vouched_batches += 1
            outcomes: list[tuple[bytes, MempoolError | None]] = []
            for start in range(0, len(batch.items), ADMIT_SLICE):
                part = batch.items[start : start + ADMIT_SLICE]
                outcomes.extend(
                    self.mempool.add_many(part, self.clock_ms(), persist=False, vouched=trusted)
                )
                await asyncio.sleep(0)
            self._wake_if_admitted(outcomes)
        finally:
            # held until admitted: a proposal naming its txs finds them meanwhile
            self.attestations.release(batch)
            self._vouched.pop((batch.digest, batch.origin), None)
            self._notify_held_waiters()

    def _on_attest(self, peer: bytes, payload: Any) -> None:
        """A validator says which signatures of a gossiped batch it believes
        (node/attest.py); counted only for a batch it is a designated verifier of."""
        digest, believed = msg.parse_attest(payload)
        validators = self.engine.get_validators(self.engine.height + 1)
        if validators.get_index(peer) is None:
            self.metrics.ignored_attestations += 1
            return
        for batch in self.attestations.vouch(validators, peer, digest, believed):
            event = self._vouched.get((batch.digest, batch.origin))
            if event is not None:
                event.set()

    def _on_get_blocks(self, peer: bytes, payload: Any) -> None:
        """A sync request: up to a frame of blocks. A peer syncs one request at a time, so
        more than one request per GET_BLOCKS_INTERVAL_S is dropped (each reply can be a
        16 MiB read for a 10-byte ask)."""
        start, limit = msg.parse_get_blocks(payload)
        now = time.monotonic()
        if now - self._served_blocks_at.get(peer, -1e9) < GET_BLOCKS_INTERVAL_S:
            self.p2p.counters.dropped["get_blocks_too_often"] += 1
            return
        self._served_blocks_at[peer] = now
        if len(self._served_blocks_at) > 1024:
            self._served_blocks_at.clear()
        self.p2p.send(peer, msg.BLOCKS, self.engine.serve_blocks(start, limit))

    def _on_peer_connected(self, peer: bytes) -> None:
        self.engine.regossip(peer)
        for chunk in chunk_gossip(self.mempool.all_raw(), self.config.p2p.max_frame_bytes // 2):
            self.p2p.send(peer, msg.TX_RESEND, chunk, droppable=True)

    # Commit and rejection notices.
    def _on_commit(self, block: Block, result: BlockResult) -> None:
        now = self.clock_ms()
        for position, tx in enumerate(block.txs):
            admitted = self.admitted_at.pop(tx.hash, None)
            if admitted is not None:
                self.metrics.commit_latency.observe(max(0, now - admitted) / 1000)
            futures = self.waiters.pop(tx.hash, None)
            if futures:
                status = {
                    "hash": tx.hash.hex(),
                    "status": "committed",
                    "height": block.height,
                    "position": position,
                }
                for future in futures:
                    if not future.done():
                        future.set_result(status)

    def _on_evict(self, tx_hash: bytes, code: str) -> None:
        self.admitted_at.pop(tx_hash, None)
        futures = self.waiters.pop(tx_hash, None)
        if futures:
            status = self._rejected_status(tx_hash, code)
            for future in futures:
                if not future.done():
                    future.set_result(status)

    # Queries.
    def tx_status(self, tx_hash: bytes) -> dict[str, Any] | None:
        found = chain.get_tx_location(self.store, tx_hash)
        if found is not None:
            return {
                "hash": tx_hash.hex(),
                "status": "committed",
                "height": found[0],
                "position": found[1],
            }
        if tx_hash in self.mempool:
            return {"hash": tx_hash.hex(), "status": "pending", "height": None}
        code = self.mempool.rejection_of(tx_hash)
        if code is not None:
            return self._rejected_status(tx_hash, code)
        return None

    def _rejected_status(self, tx_hash: bytes, code: str) -> dict[str, Any]:
        status = {"hash": tx_hash.hex(), "status": "rejected", "height": None, "error": code}
        message = self.mempool.rejection_message(tx_hash)
        return status | {"message": message} if message else status

    async def wait_tx(self, tx_hash: bytes, timeout_s: float) -> dict[str, Any] | None:
        status = self.tx_status(tx_hash)
        if status is None or status["status"] != "pending" or timeout_s <= 0:
            return status
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(tx_hash, []).append(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return self.tx_status(tx_hash)
        finally:
            futures = self.waiters.get(tx_hash)
            if futures and future in futures:
                futures.remove(future)
                if not futures:
                    del self.waiters[tx_hash]

    def status(self) -> dict[str, Any]:
        height = self.engine.height
        return {
            "chain_id": self.chain_id,
            "node": self.config.name,
            "bank": self.config.bank,
            "height": height,
            "block_hash": (chain.get_block_hash(self.store, height) or b"").hex(),
            "state_hash": (chain.get_state_hash(self.store, height) or b"").hex(),
            "validator": self.engine.is_validator(),
            "peers": len(self.p2p.connected_peers()),
            "round": self.engine.round,
            "mempool": len(self.mempool),
            "mempool_queued": self.mempool.queued_count,
            "evidence": self.engine.evidence.summary().to_json(),
            "node_key": self.node_key.public_key.hex(),
        }

    def next_operator_nonce(self) -> int:
        """The bank operator's next nonce: after its committed txs and the run of its
        pending txs that can execute. A tx that was admitted and then failed in a block is
        evicted, so its nonce is used again; never a nonce after a gap, which would queue
        every later back-office payment behind it."""
        operator = f"admin@{self.config.bank}"
        account = State(self.store).get_account(operator)
        committed = account.nonce if account else 0
        return compute_next_nonce(committed, self.mempool.pending_nonces(operator))
