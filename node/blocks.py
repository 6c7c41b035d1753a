"""Building a block (the proposer) and judging one (every node), as collaborators of the
engine with explicit inputs: the store, the tip, the time, the candidate txs. No asyncio,
no sockets, no clock of their own, so each is unit-tested with step tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import consensus as cs
from ledger import chain
from ledger.block import NO_COMMIT_HASH, Block, Commit, build_block
from ledger.errors import LedgerError
from ledger.kv import KeyValueStore
from ledger.state import State
from ledger.transition import BlockContext, BlockResult, apply_block, process_block_header
from ledger.tx import SignedTx, is_signature_valid
from node.mempool import VerifiedCache, make_reason, split_reason

ValidatorsAt = Callable[[int], cs.ValidatorSet]


@dataclass(frozen=True, slots=True)
class Tip:
    """The last committed block: its height and hash (the genesis hash at height 0)."""

    height: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class BlockLimits:
    max_txs: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class BuiltBlock:
    block: Block
    result: BlockResult
    last_commit: Commit | None
    # Candidates that can never apply (not a nonce waiting for a gap), with the reason
    # (`make_reason`: the code and what failed).
    rejected: tuple[tuple[bytes, str], ...]


def _require(ok: bool, code: str, message: str) -> None:
    if not ok:
        raise LedgerError(message, code)


def state_hash_at(store: KeyValueStore, height: int) -> bytes:
    value = chain.get_state_hash(store, height)
    if value is None:
        raise LedgerError(f"no state hash at height {height}", "store_error")
    return value


class BlockBuilder:
    """What this validator proposes at the height after the tip."""

    def __init__(
        self,
        store: KeyValueStore,
        chain_id: str,
        limits: BlockLimits,
        validators_at: ValidatorsAt,
        own_key: bytes,
    ) -> None:
        self._store = store
        self._chain_id = chain_id
        self._limits = limits
        self._validators_at = validators_at
        self._own_key = own_key

    def build(self, tip: Tip, now_ms: int, candidates: Sequence[SignedTx]) -> BuiltBlock:
        height = tip.height + 1
        prev = chain.get_block_header(self._store, tip.height)
        time_ms = max(now_ms, prev.time_ms) if prev else now_ms
        ctx = BlockContext(self._chain_id, height, time_ms)
        txs, result, failed = self._execute(height, ctx, list(candidates))
        included = []
        for tx, tx_result in zip(txs, result.results, strict=True):
            if tx_result.code is None:
                included.append(tx)
            else:
                failed.append((tx, make_reason(tx_result.code, tx_result.message)))
        rejected = tuple(
            (tx.hash, reason) for tx, reason in failed if not self._may_wait(tx, reason)
        )
        validators = self._validators_at(height)
        last_commit = chain.get_commit(self._store, tip.height) if tip.height > 0 else None
        index = validators.get_index(self._own_key)
        block = build_block(
            chain_id=self._chain_id,
            height=height,
            time_ms=time_ms,
            prev_hash=tip.hash,
            state_hash=result.state_hash,
            proposer=validators.validators[index].name if index is not None else "",
            validator_set_hash=validators.hash,
            last_commit_hash=last_commit.hash if last_commit else NO_COMMIT_HASH,
            txs=included,
        )
        executed = BlockResult(result.state_hash, result.changes, result.included)
        return BuiltBlock(block, executed, last_commit, rejected)

    def _execute(
        self, height: int, ctx: BlockContext, txs: list[SignedTx]
    ) -> tuple[list[SignedTx], BlockResult, list[tuple[SignedTx, str]]]:
        """Run the candidates on an overlay. The mempool interleaves signers fairly, so
        a payment may come before another signer's payment that funds it: txs that fail
        for want of funds (and their signers' later txs) run once more, after everything
        that passed. Returns the txs in block order, their result, and the txs left out
        of that order with their first failure."""
        prev_state = state_hash_at(self._store, height - 1)
        result = apply_block(self._store, prev_state, ctx, txs)
        if not any(r.code == "insufficient_funds" for r in result.results):
            return txs, result, []
        passed: list[SignedTx] = []
        retry: list[SignedTx] = []
        dropped: list[tuple[SignedTx, str]] = []
        waiting: set[str] = set()
        for tx, tx_result in zip(txs, result.results, strict=True):
            if tx_result.code is None and tx.body.signer not in waiting:
                passed.append(tx)
            elif tx_result.code == "insufficient_funds" or tx.body.signer in waiting:
                retry.append(tx)
                waiting.add(tx.body.signer)
            else:
                dropped.append((tx, make_reason(tx_result.code or "", tx_result.message)))
        order = passed + retry
        return order, apply_block(self._store, prev_state, ctx, order), dropped

    def _may_wait(self, tx: SignedTx, reason: str) -> bool:
        """A nonce ahead of the signer's next one waits for the gap to fill."""
        if split_reason(reason)[0] != "bad_nonce":
            return False
        account = State(self._store).get_account(tx.body.signer)
        return tx.body.nonce > (account.nonce if account else 0)


class BlockJudge:
    """Every check a node makes before it prevotes a block at the height after the tip
    (or applies a synced one); `validate` raises LedgerError or ConsensusError with a
    stable code on the first that fails."""

    def __init__(
        self,
        store: KeyValueStore,
        chain_id: str,
        limits: BlockLimits,
        validators_at: ValidatorsAt,
        verified: VerifiedCache,
        max_clock_skew_ms: int,
    ) -> None:
        self._store = store
        self._chain_id = chain_id
        self._limits = limits
        self._validators_at = validators_at
        self._verified = verified
        self._max_skew_ms = max_clock_skew_ms
        self.checks = 0  # txs whose signatures were verified while judging a block

    def validate(
        self,
        block: Block,
        last_commit: Commit | None,
        tip: Tip,
        now_ms: int | None,
        *,
        trust_signatures: bool = False,
    ) -> BlockResult:
        """`now_ms` is None for a block decided by a commit certificate (synced, or an
        observer's): the certificate, checked by the caller, vouches for its time and for
        the commit it names. `trust_signatures` (only for such a block) skips the txs'
        signature checks: 2f+1 validators signed the certificate, so at least f+1 honest
        ones believed every signature before they voted (each verified it, or had it
        vouched for by its batch's verifiers: node/attest.py); execution still runs in full.
        Execution comes before signature verification: `apply_tx` checks that every key
        signing a tx is the signer's, so no foreign key is ever verified. The signatures
        verified here enter the shared cache only once the whole block passed."""
        if trust_signatures and now_ms is not None:
            raise ValueError("only a block decided by a commit certificate is trusted")
        header = block.header
        height = tip.height + 1
        _require(header.chain_id == self._chain_id, "wrong_chain", "block of another chain")
        _require(len(block.txs) <= self._limits.max_txs, "too_many_txs", "over the limit")
        _require(
            sum(map(len, block.tx_bytes)) <= self._limits.max_bytes,
            "block_too_large",
            "over the block byte limit",
        )
        validators = self._validators_at(height)
        parent = chain.get_block_header(self._store, tip.height)
        members = [(v.name, v.public_key) for v in validators.validators]
        process_block_header(header, parent, tip.hash, self._chain_id, members)
        if now_ms is not None:
            future = header.time_ms - now_ms
            _require(future <= self._max_skew_ms, "bad_time", "block time is in the future")
            self._check_last_commit(header.last_commit_hash, last_commit, tip)
        for tx in block.txs:
            _require(tx.body.chain_id == self._chain_id, "wrong_chain", "tx of another chain")
        ctx = BlockContext(self._chain_id, height, header.time_ms)
        result = apply_block(self._store, state_hash_at(self._store, tip.height), ctx, block.txs)
        _require(not any(r.code for r in result.results), "bad_tx", "a tx fails to apply")
        _require(result.state_hash == header.state_hash, "bad_state_hash", "state hash differs")
        if trust_signatures:
            return result
        for wire_hash in self._verify_signatures(block.txs):
            self._verified.add(wire_hash)
        return result

    def _verify_signatures(self, txs: tuple[SignedTx, ...]) -> list[bytes]:
        """Verify every signature of the txs not in the cache (raises on the first that
        fails); their wire hashes, for the caller to cache once the block is valid."""
        fresh: list[bytes] = []
        for tx in txs:
            if tx.wire_hash in self._verified:
                continue
            self.checks += 1
            _require(is_signature_valid(tx), "bad_signature", f"tx {tx.hash.hex()[:16]} signature")
            fresh.append(tx.wire_hash)
        return fresh

    def _check_last_commit(self, expected: bytes, last_commit: Commit | None, tip: Tip) -> None:
        if tip.height == 0:
            _require(expected == NO_COMMIT_HASH, "bad_last_commit", "height 1 has no last commit")
            return
        if last_commit is None:
            raise LedgerError("missing last commit", "bad_last_commit")
        _require(last_commit.hash == expected, "bad_last_commit", "last commit hash differs")
        cs.verify_commit(
            self._validators_at(tip.height), self._chain_id, tip.height, tip.hash, last_commit
        )
