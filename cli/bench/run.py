"""The throughput benchmark behind `bakong bench`: fund accounts, pre-sign transfers,
submit them open loop across the nodes, time each tx from release to the block that
commits it, then check that the chain holds each counted tx once and that all nodes agree.

Everything that is timed runs on one asyncio loop; signing happens before the clock
starts (in worker processes), so the figures measure the network, not the client.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import random
import resource
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Final, Protocol

import msgpack

from cli.devnet.testnet import get_node_dir, get_node_pid, load_manifest
from cli.errors import CliError
from cli.http import MSGPACK, AsyncHttp, NodeReplyError
from ledger.commands import Command, CreateAccount, Transfer
from ledger.constants import CENTRAL_BANK_CODE
from ledger.crypto import PrivateKey
from ledger.ids import operator_of
from ledger.tx import SignedTx, TxBody, compute_next_nonce, is_signature_valid, sign_tx
from node.keyfile import read_key_file

BENCH_ASSET: Final = "KHR"
# Each bench account's starting balance; it sends and receives one riel per transfer.
FUNDING: Final = 1_000_000
# A CreateAccount and a Transfer per account: 32 accounts fill a 64-command tx.
ACCOUNTS_PER_SETUP_TX: Final = 32
# Without --rate there is no schedule to size the pre-signed pool by: assume this rate
# (a run that sends the whole pool says so: `pool_exhausted`, its tx/s then a floor).
UNLIMITED_RATE_ESTIMATE: Final = 10_000
SIGN_JOB_NONCES: Final = 8
TICK_S: Final = 0.01
FOLLOW_POLL_S: Final = 0.02
PROGRESS_S: Final = 0.25
RSS_POLL_S: Final = 0.5
CHECK_SAMPLE: Final = 100
HTTP_TIMEOUT_S: Final = 60.0


def get_cpu_model() -> str:
    """The CPU's model name, for reports (`/proc/cpuinfo` on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class BenchError(CliError):
    code = "bench_failed"


class BenchProgress(Protocol):
    """Where the bench reports what it is doing (the CLI draws a progress bar)."""

    def on_phase(self, name: str, total: int) -> None: ...

    def on_progress(self, done: int, info: str) -> None: ...


class SilentProgress:
    def on_phase(self, name: str, total: int) -> None:
        return None

    def on_progress(self, done: int, info: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class BenchConfig:
    duration_s: float = 30.0
    rate: int = 0  # offered tx/s; 0 = as fast as the network takes them
    accounts: int = 200
    batch: int = 500  # most txs per submission request
    # Without --rate: most txs released but not yet decided (0 = no bound); bounding it
    # keeps the mempools short, so latency measures the network rather than a queue.
    inflight: int = 2500
    drain_s: float = 30.0  # how long to wait for stragglers after the window
    converge_s: float = 30.0
    verify_samples: int = 2000
    workers: int = os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class BenchTarget:
    """The network under test, read from a testnet home."""

    chain_id: str
    urls: tuple[str, ...]
    follow_url: str
    validators: int
    operators: dict[str, PrivateKey]  # funded bank code -> its operator key
    pids: dict[str, int]  # node name -> pid, for RSS and CPU (local testnets only)
    nodes: int = 0  # every node verifies every tx, observers too


def load_target(home: Path, urls: Sequence[str] = ()) -> BenchTarget:
    """Nodes, operator keys and pids of the testnet in `home`; `urls` narrows the nodes
    the load goes to (the first validator is followed for commits)."""
    manifest = load_manifest(home)
    nodes = manifest.nodes
    chosen = tuple(u.rstrip("/") for u in urls) or tuple(n.http_url for n in nodes)
    follow = next((n.http_url for n in nodes if n.validator and n.http_url in chosen), chosen[0])
    operators = {
        n.bank: read_key_file(get_node_dir(home, n) / "operator_key.json")
        for n in nodes
        if n.bank != CENTRAL_BANK_CODE
    }
    pids = {}
    for n in nodes:
        pid = get_node_pid(get_node_dir(home, n))
        if pid is not None:
            pids[n.name] = pid
    return BenchTarget(
        manifest.chain_id, chosen, follow, manifest.validator_count, operators, pids, len(nodes)
    )


@dataclass(frozen=True, slots=True)
class BenchAccount:
    account: str
    key: PrivateKey


# ---------------------------------------------------------------------------------------
# HTTP


async def _post_batch(session: AsyncHttp, url: str, raws: list[bytes]) -> list[Any]:
    data = msgpack.packb(raws, use_bin_type=True)
    body = await session.post(f"{url}/v1/transactions/batch", data, MSGPACK)
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise BenchError(f"POST {url}/v1/transactions/batch: unexpected answer {body!r:.200}")
    results: list[Any] = body["results"]
    return results


# ---------------------------------------------------------------------------------------
# setup: accounts


def make_accounts(banks: Sequence[str], count: int, tag: str) -> list[BenchAccount]:
    """`count` fresh accounts spread round-robin over `banks`; `tag` keeps reruns apart."""
    return [
        BenchAccount(f"bench{tag}_{i}@{banks[i % len(banks)]}", PrivateKey.generate())
        for i in range(count)
    ]


def make_setup_commands(accounts: Sequence[BenchAccount], bank: str) -> list[tuple[Command, ...]]:
    """The command lists of `bank`'s setup txs: create each of its accounts and fund it."""
    mine = [a for a in accounts if a.account.endswith(f"@{bank}")]
    out = []
    for start in range(0, len(mine), ACCOUNTS_PER_SETUP_TX):
        cmds: list[Command] = []
        for a in mine[start : start + ACCOUNTS_PER_SETUP_TX]:
            cmds.append(CreateAccount(a.account, a.key.public_key))
            cmds.append(Transfer(operator_of(bank), a.account, BENCH_ASSET, FUNDING))
        out.append(tuple(cmds))
    return out


async def _next_nonce(session: AsyncHttp, url: str, account: str) -> int:
    found = await session.get(f"{url}/v1/accounts/{account}")
    pending: list[int] = found.get("pending_nonces") or []
    return compute_next_nonce(int(found["nonce"]), (int(n) for n in pending))


async def setup_accounts(
    session: AsyncHttp,
    target: BenchTarget,
    accounts: Sequence[BenchAccount],
    progress: BenchProgress,
) -> int:
    """Create and fund the accounts (each bank's admin creates its own customers); returns
    the height at which the last setup tx committed."""
    url = target.urls[0]
    raws: list[bytes] = []
    for bank, key in sorted(target.operators.items()):
        nonce = await _next_nonce(session, url, operator_of(bank))
        for i, cmds in enumerate(make_setup_commands(accounts, bank)):
            body = TxBody(1, target.chain_id, operator_of(bank), nonce + i, _now_ms(), cmds)
            raws.append(sign_tx(body, key).encode())
    progress.on_phase("setup", len(raws))
    results = await _post_batch(session, url, raws)
    refused = [r["error"] for r in results if "error" in r]
    if refused:
        raise BenchError(f"setup tx refused: {refused[0]['code']}: {refused[0]['message']}")
    height = 0
    for done, result in enumerate(results, 1):
        status = await session.get(f"{url}/v1/transactions/{result['hash']}?wait_ms=30000")
        if status["status"] != "committed":
            raise BenchError(f"setup tx {result['hash']} is {status['status']}: {status}")
        height = max(height, status["height"])
        progress.on_progress(done, "creating and funding accounts")
    return height


# ---------------------------------------------------------------------------------------
# pre-signing


@dataclass(frozen=True, slots=True)
class SignJob:
    chain_id: str
    created_at: int
    seeds: tuple[tuple[str, bytes, str], ...]  # (account, key seed, payee)
    nonces: tuple[int, int]  # [first, end)


def sign_job(job: SignJob) -> tuple[list[bytes], list[bytes]]:
    """Raw txs and hashes, nonce-major: every account's nonce n before anyone's n+1.
    Module-level so that worker processes can run it."""
    raws: list[bytes] = []
    hashes: list[bytes] = []
    keys = [(account, PrivateKey(seed), payee) for account, seed, payee in job.seeds]
    for nonce in range(*job.nonces):
        for account, key, payee in keys:
            cmd = Transfer(account, payee, BENCH_ASSET, 1)
            tx = sign_tx(TxBody(1, job.chain_id, account, nonce, job.created_at, (cmd,)), key)
            raws.append(tx.encode())
            hashes.append(tx.hash)
    return raws, hashes


def make_sign_jobs(
    chain_id: str, accounts: Sequence[BenchAccount], total: int, created_at: int
) -> list[SignJob]:
    """Jobs that together sign `total` (rounded up to whole rounds) transfers; account i
    pays account i+1, so every balance stays where it started."""
    n = len(accounts)
    seeds = tuple(
        (a.account, a.key.seed, accounts[(i + 1) % n].account) for i, a in enumerate(accounts)
    )
    rounds = math.ceil(total / n)
    return [
        SignJob(chain_id, created_at, seeds, (start, min(rounds, start + SIGN_JOB_NONCES)))
        for start in range(0, rounds, SIGN_JOB_NONCES)
    ]


async def presign(
    jobs: Sequence[SignJob], workers: int, progress: BenchProgress
) -> tuple[list[bytes], list[bytes]]:
    progress.on_phase("signing", sum(len(j.seeds) * (j.nonces[1] - j.nonces[0]) for j in jobs))
    raws: list[bytes] = []
    hashes: list[bytes] = []
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn")) as pool:
        futures = [loop.run_in_executor(pool, sign_job, job) for job in jobs]
        for future in futures:
            job_raws, job_hashes = await future
            raws += job_raws
            hashes += job_hashes
            progress.on_progress(len(raws), f"pre-signing transfers on {workers} cores")
    return raws, hashes


def measure_verify_rate(raws: Sequence[bytes], rounds: int = 5) -> float:
    """Ed25519 verifies per second on one core, over real signed txs from this run: the
    best of a few rounds, since other processes on the machine can only slow a round."""
    txs = [SignedTx.decode(raw) for raw in raws]
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for tx in txs:
            if not is_signature_valid(tx):
                raise BenchError("a pre-signed transfer does not verify")
        best = max(best, len(txs) / (time.perf_counter() - start))
    return best


# ---------------------------------------------------------------------------------------
# the timed run


@dataclass
class Tracker:
    """Per-tx release and commit times, indexed by position in the pre-signed order."""

    hashes: list[bytes]
    index: dict[bytes, int] = field(init=False)
    released_at: array[float] = field(init=False)
    committed_at: array[float] = field(init=False)
    committed_height: array[int] = field(init=False)
    refused_flags: bytearray = field(init=False)
    refused: Counter[str] = field(default_factory=Counter)
    released: int = 0
    committed: int = 0
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.index = {h: i for i, h in enumerate(self.hashes)}
        self.released_at = array("d", bytes(8 * len(self.hashes)))
        self.committed_at = array("d", bytes(8 * len(self.hashes)))
        self.committed_height = array("q", bytes(8 * len(self.hashes)))
        self.refused_flags = bytearray(len(self.hashes))

    @property
    def decided(self) -> int:
        return self.committed + sum(self.refused.values())

    def release(self, end: int, now: float) -> range:
        span = range(self.released, end)
        for i in span:
            self.released_at[i] = now
        self.released = end
        return span

    def refuse(self, i: int, code: str) -> None:
        """The node did not admit tx `i`: it is decided, and will never commit."""
        self.refused_flags[i] = 1
        self.refused[code] += 1

    def commit(self, tx_hashes: Sequence[str], height: int, now: float) -> None:
        for text in tx_hashes:
            i = self.index.get(bytes.fromhex(text))
            if i is None:
                continue
            if self.committed_at[i]:
                self.duplicates += 1
                continue
            self.committed_at[i] = now
            self.committed_height[i] = height
            self.committed += 1


@dataclass
class RunState:
    """What the concurrent tasks of one timed run share (one loop, so no locks)."""

    tracker: Tracker
    start: float
    stop_release: bool = False
    stop_follow: bool = False
    height: int = 0
    blocks: list[tuple[int, int, float]] = field(default_factory=list)  # (height, txs, seen)
    rss_kb: dict[str, int] = field(default_factory=dict)


class Sender:
    """One per node: sends whatever was released for it, in order, a batch at a time."""

    def __init__(self, session: AsyncHttp, url: str, batch: int, state: RunState):
        self.session = session
        self.url = url
        self.batch = batch
        self.state = state
        self.pending: list[int] = []
        self.wake = asyncio.Event()

    def push(self, positions: list[int]) -> None:
        self.pending += positions
        self.wake.set()

    async def run(self, raws: Sequence[bytes]) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                chunk, self.pending = self.pending[: self.batch], self.pending[self.batch :]
                results = await _post_batch(self.session, self.url, [raws[i] for i in chunk])
                for i, result in zip(chunk, results, strict=True):
                    if "error" in result:
                        self.state.tracker.refuse(i, result["error"]["code"])


def compute_due(config: BenchConfig, tracker: Tracker, elapsed: float) -> int:
    """How many txs should have been released `elapsed` seconds into the window."""
    total = len(tracker.hashes)
    if config.rate:
        return min(total, int(config.rate * elapsed))
    if not config.inflight:
        return total
    in_flight = tracker.released - tracker.decided
    return min(total, tracker.released + max(0, config.inflight - in_flight))


async def release_loop(config: BenchConfig, state: RunState, senders: Sequence[Sender]) -> None:
    """Open loop: release on schedule (or up to the in-flight bound), never waiting for
    answers; account i always goes to node i mod nodes, so its nonces arrive in order."""
    n_accounts = config.accounts
    tracker = state.tracker
    while True:
        now = time.monotonic()
        if now - state.start >= config.duration_s:
            break
        due = compute_due(config, tracker, now - state.start)
        if due > tracker.released:
            buckets: list[list[int]] = [[] for _ in senders]
            for i in tracker.release(due, now):
                buckets[(i % n_accounts) % len(senders)].append(i)
            for sender, bucket in zip(senders, buckets, strict=True):
                if bucket:
                    sender.push(bucket)
        await asyncio.sleep(TICK_S)
    state.stop_release = True


async def follow_loop(session: AsyncHttp, url: str, state: RunState) -> None:
    """Poll the followed node's height and read each new block; a tx's commit time is
    when its block was first seen here."""
    while not state.stop_follow:
        status = await session.get(f"{url}/v1/status")
        seen = time.monotonic()
        for height in range(state.height + 1, status["height"] + 1):
            block = await session.get(f"{url}/v1/blocks/{height}?view=hashes")
            state.tracker.commit(block["tx_hashes"], height, seen)
            state.blocks.append((height, len(block["tx_hashes"]), seen))
            state.height = height
        await asyncio.sleep(FOLLOW_POLL_S)


def read_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def read_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rss_loop(pids: dict[str, int], state: RunState) -> None:
    while not state.stop_follow:
        for name, pid in pids.items():
            rss = read_rss_kb(pid)
            if rss is not None:
                state.rss_kb[name] = max(state.rss_kb.get(name, 0), rss)
        await asyncio.sleep(RSS_POLL_S)


async def progress_loop(config: BenchConfig, state: RunState, progress: BenchProgress) -> None:
    tracker = state.tracker
    while not state.stop_release:
        elapsed = time.monotonic() - state.start
        rate = tracker.committed / elapsed if elapsed > 0 else 0.0
        info = (
            f"sent {tracker.released:,}  committed {tracker.committed:,}  "
            f"({rate:,.0f} tx/s)  height {state.height}"
        )
        done = min(elapsed, config.duration_s) * 1000
        progress.on_progress(int(done), info)
        await asyncio.sleep(PROGRESS_S)


async def drain(config: BenchConfig, state: RunState, progress: BenchProgress) -> None:
    """After the window: wait (bounded) until every released tx is committed or refused."""
    tracker = state.tracker
    progress.on_phase("draining", tracker.released)
    deadline = time.monotonic() + config.drain_s
    while tracker.decided < tracker.released and time.monotonic() < deadline:
        progress.on_progress(tracker.decided, f"waiting for {tracker.released - tracker.decided}")
        await asyncio.sleep(0.1)
    progress.on_progress(tracker.decided, f"{tracker.released - tracker.decided} left undecided")
    state.stop_follow = True


async def timed_run(
    session: AsyncHttp,
    config: BenchConfig,
    target: BenchTarget,
    raws: Sequence[bytes],
    state: RunState,
    progress: BenchProgress,
) -> dict[str, float]:
    """The measured window and the drain; returns CPU seconds per process over the window."""
    senders = [Sender(session, url, config.batch, state) for url in target.urls]
    cpu_before = _cpu_snapshot(target.pids)
    progress.on_phase("running", int(config.duration_s * 1000))
    background = [asyncio.create_task(s.run(raws)) for s in senders]
    background.append(asyncio.create_task(rss_loop(target.pids, state)))
    background.append(asyncio.create_task(progress_loop(config, state, progress)))
    follower = asyncio.create_task(follow_loop(session, target.follow_url, state))
    try:
        await _until_first_failure(release_loop(config, state, senders), [*background, follower])
        cpu_after = _cpu_snapshot(target.pids)
        await _until_first_failure(drain(config, state, progress), background)
        await follower
    finally:
        for task in [*background, follower]:
            task.cancel()
        await asyncio.gather(*background, follower, return_exceptions=True)
    return {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}


async def _until_first_failure(main: Any, watched: Sequence[asyncio.Task[None]]) -> None:
    """Run `main`; if a background task dies first, raise its error instead of hanging."""
    main_task = asyncio.ensure_future(main)
    done, _ = await asyncio.wait([main_task, *watched], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        error = None if task is main_task else task.exception()
        if error is not None:
            main_task.cancel()
            raise error
    await main_task


def read_host_busy_s() -> float | None:
    """CPU seconds all cores of the machine spent busy so far (anyone's processes):
    shows when something besides the testnet competes for the cores."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far per node, this process ("bench") and the whole host ("host")."""
    out = {name: read_cpu_s(pid) for name, pid in pids.items()}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["bench"] = usage.ru_utime + usage.ru_stime
    out["host"] = read_host_busy_s()
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------------------
# checks


async def wait_converged(
    session: AsyncHttp, urls: Sequence[str], timeout_s: float
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether all nodes reach the same height, block hash and state hash in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = [await session.get(f"{url}/v1/status") for url in urls]
        keys = {(s["height"], s["block_hash"], s["state_hash"]) for s in statuses}
        if len(keys) == 1 or time.monotonic() > deadline:
            return len(keys) == 1, statuses
        await asyncio.sleep(0.2)


async def check_in_chain(
    session: AsyncHttp, url: str, tracker: Tracker, first: int, last: int
) -> dict[str, Any]:
    """Re-read blocks first..last on `url` (not the followed node): every tx counted as
    committed must be there exactly once at the height the follower saw; then ask the
    tx endpoint about a random sample."""
    where: dict[int, list[int]] = {}
    for height in range(first, last + 1):
        block = await session.get(f"{url}/v1/blocks/{height}?view=hashes")
        for tx_hash in block["tx_hashes"]:
            i = tracker.index.get(bytes.fromhex(tx_hash))
            if i is not None:
                where.setdefault(i, []).append(height)
    counted = [i for i in range(len(tracker.hashes)) if tracker.committed_at[i]]
    missing = [i for i in counted if i not in where]
    twice = [i for i, heights in where.items() if len(heights) > 1]
    moved = [i for i in counted if i in where and where[i][0] != tracker.committed_height[i]]
    sample = random.sample(counted, min(CHECK_SAMPLE, len(counted)))
    wrong = [i for i in sample if not await _is_committed_at(session, url, tracker, i)]
    ok = not (missing or twice or moved or wrong or tracker.duplicates)
    return {
        "ok": ok,
        "node": url,
        "heights": [first, last],
        "missing": len(missing),
        "duplicated": len(twice) + tracker.duplicates,
        "wrong_height": len(moved),
        "sampled": len(sample),
        "sample_mismatches": len(wrong),
        "late_commits": len(where) - len(counted) + len(missing),
    }


async def _is_committed_at(session: AsyncHttp, url: str, tracker: Tracker, i: int) -> bool:
    status = await session.get(f"{url}/v1/transactions/{tracker.hashes[i].hex()}")
    return bool(status["status"] == "committed" and status["height"] == tracker.committed_height[i])


async def classify_undecided(session: AsyncHttp, url: str, tracker: Tracker) -> dict[str, int]:
    """What became of released txs the follower never saw committed (a sample, by status
    or rejection code), so a shortfall has a reason next to it."""
    accepted_undecided = [
        i
        for i in range(tracker.released)
        if not tracker.committed_at[i] and not tracker.refused_flags[i]
    ]
    out: Counter[str] = Counter()
    for i in random.sample(accepted_undecided, min(CHECK_SAMPLE, len(accepted_undecided))):
        try:
            status = await session.get(f"{url}/v1/transactions/{tracker.hashes[i].hex()}")
        except NodeReplyError as exc:
            out[exc.code] += 1
            continue
        error = status.get("error") or {}
        out[error.get("code") or status["status"]] += 1
    return dict(out)


# ---------------------------------------------------------------------------------------
# report


def compute_percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def compute_latencies_ms(tracker: Tracker) -> list[float]:
    return sorted(
        (tracker.committed_at[i] - tracker.released_at[i]) * 1000
        for i in range(tracker.released)
        if tracker.committed_at[i]
    )


def build_report(
    config: BenchConfig,
    target: BenchTarget,
    state: RunState,
    verify_per_core: float,
    cpu_s: dict[str, float],
) -> dict[str, Any]:
    tracker = state.tracker
    window_end = state.start + config.duration_s
    in_window = sum(1 for i in range(tracker.released) if 0 < tracker.committed_at[i] <= window_end)
    tps = in_window / config.duration_s
    bound = verify_per_core * (os.cpu_count() or 1) / target.validators
    latencies = compute_latencies_ms(tracker)
    sizes = [txs for _, txs, _ in state.blocks if txs]
    last_commit = max((tracker.committed_at[i] for i in range(tracker.released)), default=0.0)
    return {
        "tps": round(tps, 1),
        "committed": tracker.committed,
        "latency_ms": {
            "p50": round(compute_percentile(latencies, 0.50), 1),
            "p95": round(compute_percentile(latencies, 0.95), 1),
            "p99": round(compute_percentile(latencies, 0.99), 1),
            "max": round(latencies[-1] if latencies else 0.0, 1),
        },
        "verify_bound_tps": round(bound, 1),
        "bound_ratio": round(tps / bound, 3) if bound else 0.0,
        # The contract's bound divides by validators; observers verify each tx too.
        "verify_bound_all_nodes_tps": (
            round(verify_per_core * (os.cpu_count() or 1) / target.nodes, 1)
            if target.nodes
            else None
        ),
        "verifies_per_s_per_core": round(verify_per_core, 1),
        "cpus": os.cpu_count() or 1,
        "validators": target.validators,
        "duration_s": config.duration_s,
        "rate": config.rate,
        "inflight": 0 if config.rate else config.inflight,
        "offered_tps": round(_released_in_window(tracker, window_end) / config.duration_s, 1),
        "sent": tracker.released,
        "presigned": len(tracker.hashes),
        # closed loop only: every pre-signed tx went out, so the nodes were not saturated
        "pool_exhausted": not config.rate and tracker.released >= len(tracker.hashes),
        "committed_in_window": in_window,
        "tps_until_last_commit": round(tracker.committed / (last_commit - state.start), 1)
        if last_commit > state.start
        else 0.0,
        "refused": dict(tracker.refused),
        "uncommitted": tracker.released - tracker.committed - sum(tracker.refused.values()),
        "blocks": {
            "count": len(state.blocks),
            "with_txs": len(sizes),
            "mean_txs": round(sum(sizes) / len(sizes), 1) if sizes else 0.0,
            "max_txs": max(sizes, default=0),
        },
        "rss_mb": {name: round(kb / 1024, 1) for name, kb in sorted(state.rss_kb.items())},
        # percent of one core over the window; "host" sums all cores of the machine
        "cpu_percent": {
            name: round(100 * s / config.duration_s, 1) for name, s in sorted(cpu_s.items())
        },
        "nodes": list(target.urls),
        "followed": target.follow_url,
    }


def _released_in_window(tracker: Tracker, window_end: float) -> int:
    return sum(1 for i in range(tracker.released) if tracker.released_at[i] <= window_end)


# ---------------------------------------------------------------------------------------
# the whole bench


def _now_ms() -> int:
    return int(time.time() * 1000)


def compute_presign_count(config: BenchConfig) -> int:
    rate = config.rate or UNLIMITED_RATE_ESTIMATE
    return max(config.accounts, math.ceil(rate * config.duration_s))


async def run_bench(
    config: BenchConfig, target: BenchTarget, progress: BenchProgress | None = None
) -> dict[str, Any]:
    """Setup, pre-sign, the timed run, the drain and the checks; the JSON report."""
    progress = progress or SilentProgress()
    if config.accounts < 1 or config.duration_s <= 0 or config.rate < 0 or config.batch < 1:
        raise BenchError("accounts, duration and batch must be positive, rate >= 0", "bad_option")
    if not target.operators:
        raise BenchError("the testnet has no funded bank to create bench accounts", "no_banks")
    phases: dict[str, float] = {}
    clock = _PhaseClock(phases)
    async with AsyncHttp(4 * len(target.urls) + 4, HTTP_TIMEOUT_S) as session:
        tag = os.urandom(3).hex()
        accounts = make_accounts(sorted(target.operators), config.accounts, tag)
        setup_height = await setup_accounts(session, target, accounts, progress)
        clock.lap("setup")
        jobs = make_sign_jobs(target.chain_id, accounts, compute_presign_count(config), _now_ms())
        raws, hashes = await presign(jobs, config.workers, progress)
        clock.lap("signing")
        progress.on_phase("verify bound", 1)
        verify_per_core = measure_verify_rate(raws[: config.verify_samples])
        clock.lap("verify_bound")
        state = RunState(Tracker(hashes), time.monotonic(), height=setup_height)
        cpu_s = await timed_run(session, config, target, raws, state, progress)
        clock.lap("run_and_drain")
        report = build_report(config, target, state, verify_per_core, cpu_s)
        report["checks"] = await run_checks(session, config, target, state, report)
        clock.lap("checks")
    report["phases_s"] = phases
    return report


class _PhaseClock:
    """Wall seconds of each phase, for the report."""

    def __init__(self, phases: dict[str, float]) -> None:
        self._phases = phases
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self._phases[name] = round(now - self._last, 2)
        self._last = now


async def run_checks(
    session: AsyncHttp,
    config: BenchConfig,
    target: BenchTarget,
    state: RunState,
    report: dict[str, Any],
) -> dict[str, Any]:
    """Convergence of all nodes, then the chain check on a node other than the followed
    one (so the count is confirmed by a second copy of the chain)."""
    check_url = next((u for u in reversed(target.urls) if u != target.follow_url), target.urls[0])
    converged, statuses = await wait_converged(session, target.urls, config.converge_s)
    last = max(state.height, statuses[0]["height"]) if converged else state.height
    first = state.blocks[0][0] if state.blocks else state.height + 1
    in_chain = await check_in_chain(session, check_url, state.tracker, first, last)
    report["undecided"] = await classify_undecided(session, target.follow_url, state.tracker)
    return {
        "committed_in_chain": in_chain["ok"],
        "nodes_converged": converged,
        "chain": in_chain,
        "nodes": {s["node"]: [s["height"], s["state_hash"]] for s in statuses},
    }
