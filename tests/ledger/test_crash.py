"""Crash safety: a child process commits blocks to LevelDB and dies mid-commit, many times.

After every death the store must hold one whole height (block, state, indexes and height
pointer agree) and be byte-identical to a replay of the same blocks into a MemoryStore.
Blocks are a pure function of (seed, height, state), so the replay is exact.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from genesis.load import load_genesis_into
from ledger.block import NO_COMMIT_HASH, Block, Commit, CommitSig, build_block
from ledger.chain import (
    commit_block,
    get_block,
    get_block_hash,
    get_commit,
    get_height,
    get_state_hash,
)
from ledger.commands import Transfer
from ledger.constants import DOMAIN_VOTE
from ledger.kv import KeyValueReader, KeyValueStore, WriteBatch
from ledger.schema import make_block_key, make_state_hash_key
from ledger.state import State
from ledger.store.leveldb import LevelDBStore
from ledger.store.memory import MemoryStore
from ledger.transition import BlockContext, BlockResult, apply_block
from ledger.tx import SignedTx
from tests.ledger.helpers import (
    BLOCK_INTERVAL_MS,
    CHAIN_ID,
    GENESIS_TIME,
    make_genesis,
    make_node_key,
    make_tx,
)

SEED = 20240611
CUSTOMERS = [f"c{i}@aclb" for i in range(40)]
TXS_PER_BLOCK = 100
SIGKILLS = 12
EXITS = 8
ROOT = Path(__file__).resolve().parents[2]
CHILD_CODE = "from tests.ledger.test_crash import child_main; child_main()"
GENESIS = make_genesis(
    customers=dict.fromkeys(CUSTOMERS, True),
    balances=[(c, "KHR", 10**12) for c in CUSTOMERS],
)


def make_block_txs(reader: KeyValueReader, height: int, time_ms: int) -> list[SignedTx]:
    """The transfers of block `height`: seeded by height, nonces read from the state."""
    rng = random.Random(f"{SEED}/{height}")
    state = State(reader)
    nonces: dict[str, int] = {}
    txs = []
    for _ in range(TXS_PER_BLOCK):
        sender, receiver = rng.sample(CUSTOMERS, 2)
        record = state.get_account(sender)
        nonce = nonces.get(sender, record.nonce if record else 0)
        nonces[sender] = nonce + 1
        transfer = Transfer(sender, receiver, "KHR", rng.randint(1, 1_000))
        txs.append(make_tx(sender, nonce, transfer, created_at=time_ms))
    return txs


def make_next_block(store: KeyValueStore) -> tuple[Block, Commit, BlockResult]:
    """Execute and seal the next block on `store`, exactly as every run would."""
    height = get_height(store) + 1
    ctx = BlockContext(CHAIN_ID, height, GENESIS_TIME + height * BLOCK_INTERVAL_MS)
    txs = make_block_txs(store, height, ctx.time_ms)
    prev_state_hash = get_state_hash(store, height - 1)
    assert prev_state_hash is not None
    result = apply_block(store, prev_state_hash, ctx, txs)
    assert all(r.code is None for r in result.results), result.results
    prev_commit = get_commit(store, height - 1)
    block = build_block(
        chain_id=CHAIN_ID,
        height=height,
        time_ms=ctx.time_ms,
        prev_hash=get_block_hash(store, height - 1) or b"",
        state_hash=result.state_hash,
        proposer="aclb",
        validator_set_hash=bytes(32),
        last_commit_hash=prev_commit.hash if prev_commit else NO_COMMIT_HASH,
        txs=txs,
    )
    key = make_node_key("aclb")
    signature = CommitSig(key.public_key, key.sign(DOMAIN_VOTE, block.hash))
    return block, Commit(height, 0, block.hash, (signature,)), result


class DyingBatch:
    """Forwards writes, and may end the process (os._exit) before any of them."""

    def __init__(self, inner: WriteBatch, rng: random.Random) -> None:
        self.inner, self.rng = inner, rng

    def put(self, key: bytes, value: bytes) -> None:
        maybe_exit(self.rng, 1 / 3000)
        self.inner.put(key, value)

    def delete(self, key: bytes) -> None:
        maybe_exit(self.rng, 1 / 3000)
        self.inner.delete(key)


def maybe_exit(rng: random.Random, probability: float) -> None:
    if rng.random() < probability:
        os._exit(3)


class DyingStore(LevelDBStore):
    """A LevelDB store whose commits may end the process mid-batch or just after it."""

    def __init__(self, path: str, rng: random.Random) -> None:
        super().__init__(path)
        self.rng = rng

    @contextmanager
    def atomic_batch(self) -> Iterator[WriteBatch]:
        with super().atomic_batch() as batch:
            yield DyingBatch(batch, self.rng)
        maybe_exit(self.rng, 0.15)


def child_main() -> None:
    """Run in a subprocess: commit blocks forever (until killed or a random os._exit)."""
    path, mode, crash_seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(crash_seed)
    store = DyingStore(path, rng) if mode == "exit" else LevelDBStore(path)
    print("ready", flush=True)
    while True:
        block, commit, result = make_next_block(store)
        maybe_exit(rng, 0.05 if mode == "exit" else 0.0)
        commit_block(store, block, commit, result)


def run_child(path: Path, mode: str, rng: random.Random) -> int:
    """Start a child, let it commit for a while, and make it die; returns its exit code."""
    args = [str(path), mode, str(rng.randrange(2**32))]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_CODE, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    if mode == "sigkill":
        try:
            child.wait(rng.uniform(0.0, 0.6))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
    code = child.wait(60)
    child.stdout.close()
    return code


def check_whole_height(store: LevelDBStore) -> int:
    """The height pointer, the block at it, its state hash and the absence of h+1 agree."""
    height = get_height(store)
    block = get_block(store, height)
    assert height == 0 or (block is not None and block.height == height)
    assert height == 0 or get_state_hash(store, height) == block.header.state_hash  # type: ignore[union-attr]
    assert store.get(make_block_key(height + 1)) is None
    assert store.get(make_state_hash_key(height + 1)) is None
    return height


def replay_to(replay: MemoryStore, store: LevelDBStore, height: int) -> None:
    """Commit the same blocks into `replay`, checking each is byte-identical on disk."""
    while get_height(replay) < height:
        block, commit, result = make_next_block(replay)
        assert store.get(make_block_key(block.height)) == block.encode()
        commit_block(replay, block, commit, result)


@pytest.mark.slow
def test_crash_leaves_whole_height(tmp_path: Path) -> None:
    path = tmp_path / "db"
    rng = random.Random(SEED)
    replay = MemoryStore()
    load_genesis_into(replay, GENESIS)
    first = LevelDBStore(path)
    load_genesis_into(first, GENESIS)
    first.close()
    last_height = 0
    modes = ["sigkill"] * SIGKILLS + ["exit"] * EXITS
    rng.shuffle(modes)
    for mode in modes:
        code = run_child(path, mode, rng)
        assert code == (-signal.SIGKILL if mode == "sigkill" else 3)
        store = LevelDBStore(path)
        height = check_whole_height(store)
        assert height >= last_height
        replay_to(replay, store, height)
        assert list(store.iterate(b"")) == list(replay.iterate(b""))
        store.close()
        last_height = height
    assert last_height > len(modes)
