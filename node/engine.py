"""The consensus driver: the one task that owns the consensus state.

Peers, timers and the mempool feed it events through a queue. For each event it steps
the state machine and runs every action returned, in order (persist, then send, then
apply), to the end; nothing feeds the machine from inside an action: follow-up work
(the next height's buffered messages) goes back on the queue as events of its own.

Collaborators with explicit inputs, each unit-tested on its own:
- `node.blocks.BlockBuilder` builds this validator's block, `BlockJudge` judges a peer's
  (validation and execution);
- `node.inbox.FutureInbox` keeps the next height's checked messages, bounded per peer;
- `node.evidence.EvidencePool` stores equivocation evidence once per step, bounded;
- `node.sync.SyncTracker` decides whom block sync asks and what a reply was worth.
What belongs to the current height alone is one `HeightState`, replaced at each height.
An error in the engine's own side effects stops it (`on_fatal`); a bad peer message is
dropped on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import consensus as cs
from ledger import chain
from ledger.block import (
    Block,
    BlockHeader,
    Commit,
    assemble_block,
    compute_tx_root,
    decode_block_header,
)
from ledger.crypto import PrivateKey
from ledger.errors import LedgerError, StoreError
from ledger.kv import KeyValueStore
from ledger.schema import (
    make_block_key,
    make_proposed_block_key,
    make_sign_state_key,
)
from ledger.state import get_validator_set
from ledger.transition import BlockContext, BlockResult
from ledger.tx import SignedTx, peek_tx_hash
from node import messages as msg
from node.blocks import BlockBuilder, BlockJudge, BlockLimits, Tip
from node.config import ConsensusConfig
from node.evidence import EvidencePool
from node.inbox import FutureInbox, StepKey
from node.mempool import Mempool
from node.metrics import Metrics
from node.sync import SyncParams, SyncTracker, Verdict, select_blocks

log = logging.getLogger("bakong.engine")

ZERO_HASH = b"\0" * 32
# Proposals are executed for rounds up to this far above the current one (one per round);
# the next height's messages are kept for its first rounds only.
PROPOSAL_ROUNDS_AHEAD = 2
FUTURE_MAX_ROUND = 2
# A proposal's block can be no larger than this above the block limit (encoding slack).
BLOCK_SLACK_BYTES = 64 * 1024


class EngineFailure(Exception):
    """Running the engine's own side effects failed (a store write, a commit): the node
    cannot know where it stands and must stop; a restart recovers from the store."""


@dataclass(slots=True)
class Candidate:
    """A block seen at the current height with the node's verdict and execution result."""

    block: Block
    result: BlockResult | None
    valid: bool
    last_commit: Commit | None
    raw: bytes | None
    # A follower's block (`Engine.follows`): not judged live; executed, without its
    # signatures checked again, once a commit certificate decides it.
    trusted: bool = False


@dataclass(slots=True)
class HeightState:
    """What the engine holds for the current height only; replaced, never patched, when
    the height changes."""

    # Blocks seen at this height with the node's verdict, by block hash.
    candidates: dict[bytes, Candidate] = field(default_factory=dict)
    # The block judged for each round: one per round is executed.
    round_blocks: dict[int, bytes] = field(default_factory=dict)
    # This node's own proposal and votes, re-sent to a peer that (re)connects.
    own_messages: list[tuple[int, Any]] = field(default_factory=list)
    # Waiting for executable txs (no empty blocks); timeouts deferred meanwhile.
    idle: bool = False
    deferred: list[cs.ScheduleTimeout] = field(default_factory=list)
    # The machine asked this validator for a block; answered once the pause is over.
    pending_request: cs.RequestProposal | None = None
    # Blocks whose full proposal this node asked a peer for (once each), and the
    # (peer, block) pairs it sent one to (once each).
    fetched: set[bytes] = field(default_factory=set)
    served: set[tuple[bytes, bytes]] = field(default_factory=set)
    # Compact proposals whose judging waited for the held txs they name (once each), with
    # the txs as found then: a tx refused here meanwhile (a full mempool, a nonce taken)
    # is neither pending nor held when the proposal is handled again.
    awaited: dict[bytes, dict[bytes, tuple[SignedTx, bytes]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PeerMessage:
    peer: bytes
    kind: int
    payload: Any


@dataclass(frozen=True, slots=True)
class Wake:
    """Txs arrived (or the heartbeat for `height` fired): an idle height may start."""

    height: int | None = None


Send = Callable[[bytes, int, Any], bool]
Broadcast = Callable[[int, Any], int]
OnCommit = Callable[[Block, BlockResult], None]
OnFatal = Callable[[BaseException], None]


def _raise_fatal(exc: BaseException) -> None:
    raise exc


class Engine:
    def __init__(
        self,
        *,
        store: KeyValueStore,
        chain_id: str,
        node_key: PrivateKey,
        config: ConsensusConfig,
        mempool: Mempool,
        metrics: Metrics,
        send: Send,
        broadcast: Broadcast,
        on_commit: OnCommit,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        max_clock_skew_ms: int = 60_000,
        on_fatal: OnFatal = _raise_fatal,
        max_frame_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.chain_id = chain_id
        self.node_key = node_key
        self.config = config
        self.mempool = mempool
        self.metrics = metrics
        self._send = send
        self._broadcast = broadcast
        self._on_commit = on_commit
        self.clock_ms = clock_ms
        self.max_clock_skew_ms = max_clock_skew_ms
        self.params = cs.ConsensusParams(
            propose_ms=config.timeout_propose_ms,
            propose_delta_ms=config.timeout_propose_delta_ms,
            prevote_ms=config.timeout_prevote_ms,
            prevote_delta_ms=config.timeout_prevote_delta_ms,
            precommit_ms=config.timeout_precommit_ms,
            precommit_delta_ms=config.timeout_precommit_delta_ms,
        )
        self.context = cs.Context(chain_id, node_key, self.params, self.get_validators)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.state: cs.ConsensusState | None = None
        self.at = HeightState()
        self.future = FutureInbox()
        self.last_commit_ms = clock_ms()
        self.max_frame_bytes = max_frame_bytes
        self.sync = SyncTracker(
            SyncParams(max_block_bytes=config.max_block_bytes, max_reply_bytes=max_frame_bytes)
        )
        self.sync_verdicts: dict[str, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._validator_cache: dict[int, cs.ValidatorSet] = {}
        limits = BlockLimits(config.max_block_txs, config.max_block_bytes)
        self.builder = BlockBuilder(
            store, chain_id, limits, self.get_validators, node_key.public_key
        )
        self.judge = BlockJudge(
            store, chain_id, limits, self.get_validators, mempool.verified, max_clock_skew_ms
        )
        self._tip = self._read_tip()
        self.dropped_messages = 0
        self.dropped_future: dict[str, int] = {}
        self.evidence = EvidencePool(store)
        self._on_fatal = on_fatal
        self.failure: BaseException | None = None
        # Gossiped txs held outside the mempool until validators vouch for them
        # (node/attest.py), by id: a proposal may name them before they are admitted.
        self.waiting_tx: Callable[[bytes], tuple[SignedTx, bytes] | None] = lambda tx_hash: None
        # Sends the txs admitted here and not yet gossiped, before a proposal that may
        # name them: on each connection they then arrive ahead of the proposal.
        self.flush_gossip: Callable[[], None] = lambda: None
        # `await_held(tx_hashes, resume)`: whether the runtime will call `resume` once
        # those held txs are admitted (or a short wait ends); False when none is held.
        self.await_held: Callable[[list[bytes], Callable[[], None]], bool] = (
            lambda tx_hashes, resume: False
        )

    # Queries.
    @property
    def candidates(self) -> dict[bytes, Candidate]:
        return self.at.candidates

    @property
    def evidence_count(self) -> int:
        return self.evidence.stored

    @property
    def height(self) -> int:
        """Height of the last committed block."""
        return self._tip[0]

    @property
    def round(self) -> int:
        return self.state.round if self.state else 0

    def get_validators(self, height: int) -> cs.ValidatorSet:
        cached = self._validator_cache.get(height)
        if cached is None:
            cached = cs.ValidatorSet.of(list(get_validator_set(self.store, height)))
            if len(self._validator_cache) > 64:
                self._validator_cache.clear()
            self._validator_cache[height] = cached
        return cached

    def is_validator(self, height: int | None = None) -> bool:
        h = self.height + 1 if height is None else height
        return self.get_validators(h).get_index(self.node_key.public_key) is not None

    def follows(self, height: int | None = None) -> bool:
        """Whether this node only follows the chain at `height` (the next by default): it
        is no validator there and trusts commit certificates (`trust_commits`). A
        follower neither judges proposals nor admits gossiped txs; it executes each block
        once its certificate decides it."""
        return self.config.trust_commits and not self.is_validator(height)

    # Lifecycle.
    async def run(self) -> None:
        """Take one event at a time and run it, with every action it causes, to the end
        before the next. An error in the engine's own side effects (store, commit) stops
        the engine and reports it (`on_fatal`); an error in one peer message drops it."""
        try:
            self._enter_height(restored=True)
        except Exception as exc:
            self._fail(exc)
            return
        while True:
            event = await self.queue.get()
            try:
                self._handle(event)
            except (EngineFailure, StoreError, OSError) as exc:
                self._fail(exc)
                return
            except LedgerError as exc:  # a malformed message from a peer: drop it
                self.dropped_messages += 1
                log.warning("dropped %s: %s: %s", _describe(event), exc.code, exc.message)
            except Exception:  # one bad event must never stop consensus
                log.exception("error handling %s", _describe(event))

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        self.stop()
        log.critical("consensus stopped: %s: %s", type(exc).__name__, exc)
        self._on_fatal(exc)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def submit(self, event: Any) -> None:
        self.queue.put_nowait(event)

    def wake(self) -> None:
        """Called when txs arrive; cheap when not idle. Txs behind a nonce gap cannot go
        into a block, so they wake nothing."""
        if self.mempool.has_executable() and (self.at.idle or self.at.pending_request is not None):
            self.submit(Wake())

    # Event dispatch.
    def _handle(self, event: Any) -> None:
        if isinstance(event, PeerMessage):
            self._on_peer_message(event)
        elif isinstance(event, Wake):
            self._on_wake(event)
        elif isinstance(event, cs.TimeoutFired):
            self._feed(event)
        elif isinstance(event, _ProposeNow):
            self._try_propose()
        elif isinstance(event, _StatusTick):
            self._broadcast(msg.STATUS, [self.height, self._tip_hash()])
            self._request_sync()  # deadlines and the one-block grace move on with time
        elif isinstance(event, PeerGone):
            self.sync.forget(event.peer)
        elif isinstance(event, _EnterHeight) and self.state is None:
            self._enter_height()

    def _feed(self, event: cs.Event) -> None:
        """Step the machine, then run every action it returned, in order, to the end.
        Nothing here feeds the machine again: follow-up work (buffered messages of a new
        height) goes back on the queue as events of its own."""
        if self.state is None:
            return
        self.state, actions = cs.step(self.state, event)
        for action in actions:
            try:
                self._run_action(action)
            except Exception as exc:
                raise EngineFailure(f"{type(action).__name__}: {exc}") from exc

    # Actions, in the order the machine emitted them: persist, send, apply.
    def _run_action(self, action: cs.Action) -> None:
        if isinstance(action, cs.PersistSignState):
            with self.store.atomic_batch() as batch:
                batch.put(make_sign_state_key(), action.sign_state.encode())
        elif isinstance(action, cs.BroadcastProposal):
            self._send_proposal(action.proposal)
        elif isinstance(action, cs.BroadcastVote):
            payload = action.vote.encode()
            self.at.own_messages.append((msg.VOTE, payload))
            self._broadcast(msg.VOTE, payload)
        elif isinstance(action, cs.ScheduleTimeout):
            self._schedule(action)
        elif isinstance(action, cs.RequestProposal):
            # answered as an event of its own: building a block feeds the machine
            self.at.pending_request = action
            self.submit(_ProposeNow())
        elif isinstance(action, cs.Decide):
            self._decide(action)
        elif isinstance(action, cs.Evidence):
            self._record_evidence(action)

    def _schedule(self, action: cs.ScheduleTimeout) -> None:
        if self.at.idle:
            self.at.deferred.append(action)
            return
        event = cs.TimeoutFired(action.height, action.round, action.step)
        self._call_later(action.duration_ms / 1000, event)

    def _call_later(self, delay_s: float, event: Any) -> None:
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self.submit(event)

        handle = loop.call_later(delay_s, fire)
        holder.append(handle)
        self._timers.add(handle)

    # Heights.
    def _enter_height(self, restored: bool = False) -> None:
        """Start consensus for the height after the tip: idle until txs arrive."""
        height = self.height + 1
        sign_state = self._load_sign_state()
        self.at = HeightState()
        self.state = cs.new_state(self.context, height, sign_state)
        resumed = restored and sign_state is not None and sign_state.height == height
        self._set_idle(resumed)
        self._feed(cs.Start())
        self._requeue_future()

    def _reset_height(self) -> None:
        """Forget what belonged to the height just left: its blocks and own messages. The
        idle flag, the deferred timeouts and the pending proposal request are the new
        height's already (the machine's actions for it follow the Decide)."""
        at = self.at
        self.at = HeightState(
            idle=at.idle, deferred=at.deferred, pending_request=at.pending_request
        )

    def _requeue_future(self) -> None:
        """The messages kept for this height become ordinary events, each handled (and,
        if it fails, dropped) on its own."""
        for message in self.future.drain():
            self.submit(message)

    def _set_idle(self, resumed: bool = False) -> None:
        """A new height waits for txs that can execute (no empty blocks, also not for txs
        behind a nonce gap), or for the heartbeat if one is set."""
        self.at.idle = not resumed and not self.mempool.has_executable()
        if self.at.idle and self.config.heartbeat_ms:
            self._call_later(self.config.heartbeat_ms / 1000, Wake(self.height + 1))

    def _on_wake(self, event: Wake) -> None:
        # a heartbeat set for an earlier height
        if event.height is not None and event.height != self.height + 1:
            return
        if self.at.idle:
            if event.height is None and not self.mempool.has_executable():
                return  # only txs behind a nonce gap arrived
            self._leave_idle()
        elif self.at.pending_request is not None:
            self._try_propose()

    def _leave_idle(self) -> None:
        """Peers are working on this height (or txs arrived): arm the deferred timeouts and,
        if this validator is the proposer, propose (an empty block if its mempool missed
        the txs), so that the height cannot stall on one node's view of the mempool."""
        self.at.idle = False
        deferred, self.at.deferred = self.at.deferred, []
        for action in deferred:
            self._schedule(action)
        if self.at.pending_request is not None:
            self._try_propose()

    def _load_sign_state(self) -> cs.SignState | None:
        raw = self.store.get(make_sign_state_key())
        return cs.SignState.decode(raw) if raw is not None else None

    # Proposing.
    def _try_propose(self) -> None:
        request = self.at.pending_request
        if request is None or self.state is None:
            return
        if (request.height, request.round) != (self.state.height, self.state.round):
            self.at.pending_request = None
            return
        wait_ms = self.last_commit_ms + self.config.timeout_commit_ms - self.clock_ms()
        if wait_ms > 0:
            self._call_later(wait_ms / 1000, _ProposeNow())
            return
        if self.at.idle:
            return  # woken by the next tx or the heartbeat
        self.at.pending_request = None
        candidate = self._build_block(request.height)
        self.at.candidates[candidate.block.hash] = candidate
        # A restarted proposer re-sends its signed proposal: keep the body it names.
        with self.store.atomic_batch(sync=False) as batch:
            batch.put(make_proposed_block_key(), candidate.raw or candidate.block.encode())
        self._feed(cs.ProposalValue(request.height, request.round, candidate.block.hash))

    def _build_block(self, height: int) -> Candidate:
        candidates = self.mempool.candidates(self.config.max_block_txs, self.config.max_block_bytes)
        built = self.builder.build(Tip(*self._tip), self.clock_ms(), list(candidates))
        for tx_hash, code in built.rejected:
            self.mempool.reject(tx_hash, code, height)
        block = built.block
        return Candidate(block, built.result, True, built.last_commit, block.encode())

    def _send_proposal(self, proposal: cs.Proposal) -> None:
        """Peers already hold the txs (gossip): the proposal names them by body hash (their
        mempool key). A peer missing some, or holding another signed variant of one (the
        tx root, over wire hashes, then differs), asks for the full block (GET_PROPOSAL);
        a peer that (re)connects gets the full block at once."""
        candidate = self.at.candidates.get(proposal.block_hash) or self._restore_proposed()
        if candidate is None or candidate.block.hash != proposal.block_hash:
            log.error("proposal for an unknown block %s", proposal.block_hash.hex()[:16])
            return
        last = candidate.last_commit.encode() if candidate.last_commit else b""
        block = candidate.block
        full = [proposal.encode(), candidate.raw or block.encode(), last]
        self.at.own_messages.append((msg.PROPOSAL, full))
        hashes = [tx.hash for tx in block.txs]
        compact = [proposal.encode(), block.header.encode(), hashes, last]
        self.flush_gossip()
        self._broadcast(msg.COMPACT_PROPOSAL, compact)

    def _restore_proposed(self) -> Candidate | None:
        """The block this validator proposed before a restart, judged again."""
        raw = self.store.get(make_proposed_block_key())
        if raw is None:
            return None
        block = Block.decode(raw)
        if block.height != self.height + 1:
            return None
        last_commit = chain.get_commit(self.store, block.height - 1) if block.height > 1 else None
        return self._judge(block, raw, last_commit)

    # Judging peers' blocks.
    def _judge(self, block: Block, raw: bytes | None, last_commit: Commit | None) -> Candidate:
        known = self.at.candidates.get(block.hash)
        if known is not None:
            return known
        try:
            # every check before prevoting, the block's time against this node's clock
            result = self.judge.validate(block, last_commit, Tip(*self._tip), self.clock_ms())
            candidate = Candidate(block, result, True, last_commit, raw)
        except StoreError:
            raise  # our store failed, not the block: the engine stops
        except (LedgerError, cs.ConsensusError) as exc:
            log.warning("invalid block %d %s: %s", block.height, block.hash.hex()[:16], exc)
            candidate = Candidate(block, None, False, last_commit, raw)
        self.at.candidates[block.hash] = candidate
        return candidate

    # Deciding.
    def _decide(self, action: cs.Decide) -> None:
        candidate = self.at.candidates.get(action.block_hash)
        if candidate is not None and candidate.trusted and candidate.result is None:
            candidate = self._execute_trusted(candidate)
        if candidate is None or candidate.result is None:
            log.error("decided block %s is not held; syncing", action.block_hash.hex()[:16])
            self.sync.end_grace(self.height)
            self._request_sync()
            return
        self._commit(candidate.block, action.commit, candidate.result, candidate.last_commit)
        self._after_commit(candidate.block)

    def _execute_trusted(self, candidate: Candidate) -> Candidate | None:
        """A follower's decided block, executed (its signatures trusted: the machine
        counted 2f+1 verified precommits for it). The last commit it came with is kept
        only if the certified header names it. None if it does not execute: 2f+1
        validators signed a block that fails here, so this node syncs instead."""
        block = candidate.block
        try:
            result = self.judge.validate(block, None, Tip(*self._tip), None, trust_signatures=True)
        except StoreError:
            raise
        except (LedgerError, cs.ConsensusError) as exc:
            log.error("decided block %d does not execute here: %s", block.height, exc)
            return None
        last = candidate.last_commit
        if last is not None and last.hash != block.header.last_commit_hash:
            last = None
        self.metrics.trusted_blocks += 1
        return replace(candidate, result=result, last_commit=last)

    def _trusted_candidate(
        self, block: Block, raw: bytes | None, last_commit: Commit | None
    ) -> Candidate:
        """A follower keeps a proposed block unjudged until a certificate decides it."""
        known = self.at.candidates.get(block.hash)
        if known is not None:
            return known
        candidate = Candidate(block, None, True, last_commit, raw, trusted=True)
        self.at.candidates[block.hash] = candidate
        return candidate

    def _commit(
        self, block: Block, commit: Commit, result: BlockResult, last_commit: Commit | None
    ) -> None:
        """Store a decided or synced block, then everything that follows any commit:
        metrics, mempool eviction, waiting clients."""
        # A decided block's parent certificate replaces the one stored (the first quorum
        # this node saw) in the block's own write: what sync serves then matches the
        # block's last_commit_hash. (A synced block comes with no last commit here.)
        parent_commit = None
        if last_commit is not None and block.height > 1:
            stored = chain.get_commit(self.store, block.height - 1)
            replaces = stored is None or stored.hash != last_commit.hash
            certifies_tip = (last_commit.height, last_commit.block_hash) == self._tip
            if replaces and certifies_tip:
                parent_commit = last_commit
            elif replaces:  # judging checked it against the tip: should never happen
                log.warning("block %d: its last commit does not certify the tip", block.height)
        chain.commit_block(self.store, block, commit, result, parent_commit)
        self._tip = (block.height, block.hash)
        now = self.clock_ms()
        self.metrics.block_interval.observe(max(0, now - self.last_commit_ms) / 1000)
        self.last_commit_ms = now
        self.metrics.committed_blocks += 1
        self.metrics.committed_txs += len(block.txs)
        signers = {tx.body.signer for tx in block.txs}
        ctx = BlockContext(self.chain_id, block.height + 1, block.header.time_ms)
        evicted = self.mempool.update((tx.hash for tx in block.txs), signers, ctx)
        self.mempool.verified.discard(tx.wire_hash for tx in block.txs)
        self._on_commit(block, result)
        self.evidence.prune(block.height)
        self._validator_cache.pop(block.height + 1, None)
        for tx_hash, code in evicted:
            log.info("evicted tx %s: %s", tx_hash.hex()[:16], code)

    def _after_commit(self, block: Block) -> None:
        log.info(
            "committed block %d %s txs=%d", block.height, block.hash.hex()[:16], len(block.txs)
        )
        self._broadcast(msg.STATUS, [block.height, block.hash])
        self._after_height_change()

    def _after_height_change(self) -> None:
        """The machine entered the next height inside `step`; re-sync the node's view."""
        state = self.state
        if state is None or state.height != self.height + 1:
            self.state = None
            self.submit(_EnterHeight())
            return
        self._reset_height()
        self._set_idle()
        self._requeue_future()

    def _record_evidence(self, action: cs.Evidence) -> None:
        if self.evidence.record(action):
            log.warning("evidence of equivocation recorded at height %d", self.height + 1)

    # Peer messages.
    def _on_peer_message(self, message: PeerMessage) -> None:
        if message.kind == msg.COMPACT_PROPOSAL:
            self._on_compact_proposal(message)
        elif message.kind == msg.PROPOSAL:
            self._on_proposal(message)
        elif message.kind == msg.GET_PROPOSAL:
            self._on_get_proposal(message)
        elif message.kind == msg.VOTE:
            self._on_vote(message)
        elif message.kind == msg.STATUS:
            self._on_status(message)
        elif message.kind == msg.BLOCKS:
            self._on_blocks(message)

    def _message_height(
        self, height: int, message: PeerMessage, signed: cs.SignedMessage, size: int
    ) -> bool:
        """True when `height` is current. A message for the next height is checked
        (`_check_future`) and kept in the bounded inbox; a later one triggers sync."""
        current = self.height + 1
        if height == current:
            if self.at.idle:
                self._leave_idle()
            return True
        if height > current:
            # an untrusted claim: it only decides whom sync asks
            self.sync.on_claim(message.peer, height - 1)
            if height == current + 1:
                self._keep_for_next_height(message, signed, size)
            self._request_sync()
        return False

    def _keep_for_next_height(
        self, message: PeerMessage, signed: cs.SignedMessage, size: int
    ) -> None:
        reason = self._check_future(signed, size)
        if reason is None:
            vote_type = int(signed.vote_type) if isinstance(signed, cs.Vote) else 0
            signer = signed.validator if isinstance(signed, cs.Vote) else signed.proposer
            step: StepKey = (message.kind, signed.round, vote_type, signer)
            reason = self.future.offer(message.peer, step, signed.block_hash, size, message)
        if reason is not None:
            self.dropped_future[reason] = self.dropped_future.get(reason, 0) + 1
            log.debug("next-height message from %s not kept: %s", message.peer.hex()[:16], reason)

    def _check_future(self, signed: cs.SignedMessage, size: int) -> str | None:
        """The cheap checks a next-height message passes before it is kept: an early
        round, a signer of that height (the round's proposer for a proposal), a block
        within the block limit, and a valid signature (checked last: it costs most)."""
        if signed.round > FUTURE_MAX_ROUND:
            return "far_round"
        validators = self.get_validators(signed.height)
        if isinstance(signed, cs.Vote):
            if validators.get_index(signed.validator) is None:
                return "not_validator"
            ok = signed.is_signed_by_validator(self.chain_id)
        else:
            if signed.proposer != validators.get_proposer(signed.height, signed.round).public_key:
                return "not_proposer"
            if size > self.config.max_block_bytes + BLOCK_SLACK_BYTES:
                return "too_large"
            ok = signed.is_signed_by_proposer(self.chain_id)
        return None if ok else "bad_signature"

    def _on_proposal(self, message: PeerMessage) -> None:
        raw_proposal, raw_block, raw_last = msg.parse_proposal(message.payload)
        proposal = cs.Proposal.decode(raw_proposal)
        size = len(raw_proposal) + len(raw_block) + len(raw_last)
        if not self._message_height(proposal.height, message, proposal, size):
            return
        if not self._is_proposal_acceptable(proposal, message):
            return
        if len(raw_block) > self.config.max_block_bytes + BLOCK_SLACK_BYTES:
            self._drop_proposal("too_large", message)
            return
        if not self._claim_round(proposal):
            return
        block = Block.decode(raw_block, self._held_tx)
        if not self._is_proposed_header(proposal, block.header, message):
            return
        last_commit = Commit.decode(raw_last) if raw_last else None
        if self.follows(proposal.height):
            candidate = self._trusted_candidate(block, raw_block, last_commit)
        else:
            candidate = self._judge(block, raw_block, last_commit)
        self._feed(cs.ProposalReceived(proposal, candidate.valid))

    def _held_tx(self, raw: bytes) -> SignedTx | None:
        """The mempool's decoded tx with the id `raw` names (a full block after a compact
        proposal mostly carries txs gossip brought). `Block.decode` takes it only if it
        is exactly these bytes (its wire hash), else decodes them."""
        tx_hash = peek_tx_hash(raw)
        if tx_hash is None:
            return None
        held = self._held(tx_hash)
        return held[0] if held is not None else None

    def _held(self, tx_hash: bytes) -> tuple[SignedTx, bytes] | None:
        """A tx this node holds by id, decoded and raw: in the mempool, or gossiped and
        waiting for vouchers (its signatures are then verified when a block is judged:
        a waiting tx is not in the verified cache)."""
        pending = self.mempool.get_pending(tx_hash)
        if pending is not None:
            return pending.tx, pending.raw
        return self.waiting_tx(tx_hash)

    def _claim_round(self, proposal: cs.Proposal) -> bool:
        """At most one block per round is decoded and executed: the first block hash the
        round's proposer signed claims the round, before anything is decoded. A second,
        different one is equivocation: the machine records the evidence; it is not run."""
        claimed = self.at.round_blocks.setdefault(proposal.round, proposal.block_hash)
        if claimed == proposal.block_hash:
            return True
        self.metrics.drop_proposal("second_block_for_round")
        self._feed(cs.ProposalReceived(proposal, False))
        return False

    def _fetch_proposal(self, peer: bytes, block_hash: bytes, reason: str) -> None:
        """Ask for the full proposal, once per block at this height."""
        if block_hash not in self.at.fetched:
            self.at.fetched.add(block_hash)
            fetched = self.metrics.fetched_proposals
            fetched[reason] = fetched.get(reason, 0) + 1
            self._send(peer, msg.GET_PROPOSAL, block_hash)

    def _on_compact_proposal(self, message: PeerMessage) -> None:
        raw_proposal, raw_header, hashes, raw_last = msg.parse_compact_proposal(message.payload)
        proposal = cs.Proposal.decode(raw_proposal)
        size = len(raw_proposal) + len(raw_header) + 32 * len(hashes) + len(raw_last)
        if not self._message_height(proposal.height, message, proposal, size):
            return
        if not self._is_proposal_acceptable(proposal, message):
            return
        if len(hashes) > self.config.max_block_txs:
            self._drop_proposal("too_many_txs", message)
            return
        if not self._claim_round(proposal):
            return
        header = BlockHeader.decode(raw_header)
        if not self._is_proposed_header(proposal, header, message):
            return
        candidate = self.at.candidates.get(header.hash)
        if candidate is None:
            kept = self.at.awaited.get(header.hash)
            found: list[tuple[SignedTx, bytes] | None]
            if kept is None:
                found = [self._held(tx_hash) for tx_hash in hashes]
            else:  # handled again after waiting: what is gone since, as found before
                found = [self._held(h) or kept.get(h) for h in hashes]
            held = [h for h in found if h is not None]
            if len(held) != len(found):
                self._fetch_proposal(message.peer, header.hash, "missing_txs")
                return
            # The root is over wire hashes: a mismatch means a wrong list, or that this
            # mempool holds another signed variant of a body. The full block tells.
            if compute_tx_root([tx.wire_hash for tx, _ in held]) != header.tx_root:
                log.info("compact proposal: txs held here do not match the tx root; fetching")
                self._fetch_proposal(message.peer, header.hash, "tx_root")
                return
            if not self.follows(proposal.height) and self._awaits_held(header.hash, held, message):
                return
            block = assemble_block(header, tuple(t for t, _ in held), tuple(r for _, r in held))
            last_commit = Commit.decode(raw_last) if raw_last else None
            if self.follows(proposal.height):
                candidate = self._trusted_candidate(block, None, last_commit)
            else:
                candidate = self._judge(block, None, last_commit)
        self._feed(cs.ProposalReceived(proposal, candidate.valid))

    def _awaits_held(
        self, block_hash: bytes, held: list[tuple[SignedTx, bytes]], message: PeerMessage
    ) -> bool:
        """Whether judging the compact proposal waits: it names txs held for their
        validators' vouchers (node/attest.py), whose signatures judging now would verify
        here, while their vouchers are likely a few milliseconds away. It waits once, until
        those txs are admitted or a short wait ends (`await_held`), and the message is
        then handled again; whatever is still held then is verified by the judge."""
        if block_hash in self.at.awaited:
            return False
        self.at.awaited[block_hash] = {tx.hash: (tx, raw) for tx, raw in held}
        waiting = [tx.hash for tx, _ in held if self.mempool.get_pending(tx.hash) is None]
        if waiting and self.await_held(waiting, lambda: self.submit(message)):
            self.metrics.awaited_proposals += 1
            return True
        return False

    def _is_proposal_acceptable(self, proposal: cs.Proposal, message: PeerMessage) -> bool:
        """The machine's own proposal checks (height, round, proposer, signature), run
        before the block is decoded, judged or executed."""
        state = self.state
        reason = "no_state" if state is None else cs.check_proposal(state, proposal)
        # Executed only for rounds close to ours (the machine keeps a wider window).
        if (
            reason is None
            and state is not None
            and (proposal.round > state.round + PROPOSAL_ROUNDS_AHEAD)
        ):
            reason = "far_round"
        if reason is None:
            return True
        self._drop_proposal(reason, message)
        return False

    def _is_proposed_header(
        self, proposal: cs.Proposal, header: BlockHeader, message: PeerMessage
    ) -> bool:
        """The block is the one the proposal names, and a fresh proposal (valid round -1)
        names its own signer as the block's proposer. (A re-proposal carries the valid
        value, a block an earlier round's proposer may have built.)"""
        if header.hash != proposal.block_hash:
            self._drop_proposal("wrong_block", message)
            return False
        if proposal.valid_round == -1:
            validators = self.get_validators(proposal.height)
            index = validators.get_index(proposal.proposer)
            name = validators.validators[index].name if index is not None else None
            if header.proposer != name:
                self._drop_proposal("wrong_block_proposer", message)
                return False
        return True

    def _drop_proposal(self, reason: str, message: PeerMessage) -> None:
        self.dropped_messages += 1
        self.metrics.drop_proposal(reason)
        log.info("dropped proposal from peer %s: %s", message.peer.hex()[:16], reason)

    def _on_get_proposal(self, message: PeerMessage) -> None:
        """The full proposal for a peer that misses txs: once per peer and block."""
        block_hash = msg.parse_get_proposal(message.payload)
        if (message.peer, block_hash) in self.at.served:
            return
        self.at.served.add((message.peer, block_hash))
        for kind, payload in self.at.own_messages:
            if kind == msg.PROPOSAL and cs.Proposal.decode(payload[0]).block_hash == block_hash:
                self._send(message.peer, msg.PROPOSAL, payload)
                return

    def _on_vote(self, message: PeerMessage) -> None:
        vote = cs.Vote.decode(message.payload)
        if self._message_height(vote.height, message, vote, 160):
            self._feed(cs.VoteReceived(vote))

    def _on_status(self, message: PeerMessage) -> None:
        height, _ = msg.parse_status(message.payload)
        self.sync.on_claim(message.peer, height)
        self._request_sync()

    # Block sync: the tracker decides whom to ask and what a reply was worth.
    def _request_sync(self) -> None:
        now = time.monotonic()
        for expired in self.sync.expire(now):
            self._count_sync("timeout")
            log.info("sync: peer %s did not answer in time", expired.peer.hex()[:16])
        while (request := self.sync.next_request(self.height, now)) is not None:
            if not self._send(request.peer, msg.GET_BLOCKS, [request.start, request.count]):
                self.sync.forget(request.peer)

    def _count_sync(self, verdict: str) -> None:
        self.sync_verdicts[verdict] = self.sync_verdicts.get(verdict, 0) + 1

    def _on_blocks(self, message: PeerMessage) -> None:
        request = self.sync.get_awaited(message.peer)
        if request is None:  # nobody asked this peer: not even decoded
            self.dropped_messages += 1
            self._count_sync(Verdict.UNSOLICITED.value)
            return
        applied, valid = 0, True
        try:
            for raw_block, raw_commit in msg.parse_blocks(message.payload, request.count):
                # consensus may have committed it meanwhile: skip before decoding the txs
                if decode_block_header(raw_block).height != self.height + 1:
                    continue
                block = Block.decode(raw_block, self._held_tx)
                self._apply_synced(block, Commit.decode(raw_commit))
                applied += 1
        except StoreError:
            raise  # our store failed, not the peer's block: the engine stops
        except (LedgerError, cs.ConsensusError) as exc:
            log.warning("sync: reply from peer %s refused: %s", message.peer.hex()[:16], exc)
            valid = False
        verdict = self.sync.on_blocks(message.peer, applied, valid, self.height, time.monotonic())
        self._count_sync(verdict.value)
        if applied:
            self.state = None
            self._enter_height()
        self._request_sync()

    def _apply_synced(self, block: Block, commit: Commit) -> None:
        validators = self.get_validators(block.height)
        cs.verify_commit(validators, self.chain_id, block.height, block.hash, commit)
        result = self.judge.validate(
            block, None, Tip(*self._tip), None, trust_signatures=self.config.trust_commits
        )
        self._commit(block, commit, result, None)
        self.metrics.synced_blocks += 1
        log.info("synced block %d %s", block.height, block.hash.hex()[:16])

    def serve_blocks(self, start: int, limit: int) -> list[list[bytes]]:
        """Blocks with their commits from `start`, for a peer that is behind: at most
        `limit`, and no more than one frame holds (at least one block)."""
        return select_blocks(self._stored_blocks(start), limit, self.max_frame_bytes)

    def _stored_blocks(self, start: int) -> Iterator[tuple[bytes, bytes]]:
        for height in range(start, self.height + 1):
            raw = self.store.get(make_block_key(height))
            commit = chain.get_commit(self.store, height)
            if raw is None or commit is None:
                return
            yield raw, commit.encode()

    def regossip(self, peer: bytes) -> None:
        """On (re)connect: our status and this height's own proposal and votes."""
        self._send(peer, msg.STATUS, [self.height, self._tip_hash()])
        for kind, payload in self.at.own_messages:
            self._send(peer, kind, payload)

    # Helpers.
    def _tip_hash(self) -> bytes:
        return self._tip[1]

    def _read_tip(self) -> tuple[int, bytes]:
        """(height, hash) of the last committed block: read once, then kept by `_commit`."""
        height = chain.get_height(self.store)
        return height, chain.get_block_hash(self.store, height) or ZERO_HASH


@dataclass(frozen=True, slots=True)
class _ProposeNow:
    pass


@dataclass(frozen=True, slots=True)
class PeerGone:
    """A peer's session ended: sync stops counting on it."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class _EnterHeight:
    """Start the height after the tip (queued when the machine did not move there)."""


@dataclass(frozen=True, slots=True)
class _StatusTick:
    pass


def _describe(event: Any) -> str:
    if isinstance(event, PeerMessage):
        return f"message type {event.kind} from peer {event.peer.hex()[:16]}"
    return type(event).__name__
