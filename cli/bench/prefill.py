"""Grow a running testnet for the growth benchmark: N funded accounts, then M transfers
among them, sent through the nodes' API like any client's.

Going through the network (rather than writing blocks into the stores offline) keeps the
grown stores exactly what a real network leaves: blocks with their commit certificates,
indexes, state, mempool history and LevelDB's compaction debt, with nothing of node/ or
ledger/ re-implemented here. It costs the network's rate (about 2,000 tx/s on 2 cores).

The client keeps memory bounded at any scale: account i's name and key follow from
(the run's secret, i), so no account is kept; transfers are signed a chunk at a time, in
worker processes, while the chunk before is being sent; at most `window` accepted txs
wait for a block, so the mempools stay short.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Final

import msgpack

from cli.bench.run import (
    ACCOUNTS_PER_SETUP_TX,
    FUNDING,
    BenchAccount,
    BenchError,
    BenchTarget,
    SignJob,
    SilentProgress,
    read_rss_kb,
    setup_accounts,
    sign_job,
)
from cli.http import MSGPACK, AsyncHttp
from ledger.commands import Issue
from ledger.constants import CENTRAL_BANK_CODE
from ledger.crypto import PrivateKey
from ledger.ids import operator_of
from ledger.tx import TxBody, compute_next_nonce, sign_tx

# Accounts created per round of setup txs: 1,000 txs of 64 commands (~3.3 MB), one request
# under the node's 8 MB body limit, 250 per bank operator (its nonce window is 1,000).
SETUP_CHUNK_ACCOUNTS: Final = 1000 * ACCOUNTS_PER_SETUP_TX
# Transfers signed at a time (~3.6 MB); two chunks are in memory at once.
TRANSFER_CHUNK: Final = 20_000
SIGN_PIECE: Final = 2_500
BATCH: Final = 500
# Accepted txs not yet in a block: enough to fill blocks, far below the mempool's capacity.
WINDOW: Final = 10_000
# Each account at most this many pending txs (the node's nonce window is 1,000).
WINDOW_PER_ACCOUNT: Final = 100
# Refusals that mean "not now": the tx is sent again after a pause.
RETRY_CODES: Final = frozenset({"mempool_full", "mempool_queue_full", "queue_full"})
RETRY_PAUSE_S: Final = 0.5
# On a retry these say the first attempt got in after all.
ALREADY_IN: Final = frozenset({"duplicate", "already_committed"})
STALL_S: Final = 120.0
POLL_S: Final = 0.05
HEADERS_PAGE: Final = 50
REPORT_EVERY_S: Final = 5.0
WAIT_MS: Final = 30_000


class PrefillError(BenchError):
    code = "prefill_failed"


@dataclass(frozen=True, slots=True)
class Population:
    """The prefill's accounts, spread round-robin over `banks`: account i's name and key
    are computed from (`secret`, i) whenever needed, never stored."""

    secret: bytes
    banks: tuple[str, ...]
    count: int

    @staticmethod
    def new(banks: Sequence[str], count: int) -> Population:
        return Population(os.urandom(16), tuple(sorted(banks)), count)

    def get_name(self, i: int) -> str:
        return f"g{self.secret[:3].hex()}_{i}@{self.banks[i % len(self.banks)]}"

    def get_seed(self, i: int) -> bytes:
        return hashlib.sha256(b"bakong-growth" + self.secret + i.to_bytes(8, "big")).digest()

    def get_account(self, i: int) -> BenchAccount:
        return BenchAccount(self.get_name(i), PrivateKey(self.get_seed(i)))


def make_transfer_jobs(
    chain_id: str, population: Population, start: int, end: int, created_at: int
) -> list[SignJob]:
    """The sign jobs of transfers `start`..`end` (exclusive) of the prefill's sequence, in
    order. Transfer p is account p mod N's nonce p div N, paying account p+1 mod N one
    riel, so every balance stays where it started and no nonce comes before the last."""
    n = population.count
    jobs = []
    p = start
    while p < end:
        nonce, first = divmod(p, n)
        last = min(n, first + SIGN_PIECE, first + end - p)
        seeds = tuple(
            (population.get_name(a), population.get_seed(a), population.get_name((a + 1) % n))
            for a in range(first, last)
        )
        jobs.append(SignJob(chain_id, created_at, seeds, (nonce, nonce + 1)))
        p += last - first
    return jobs


def compute_window(accounts: int) -> int:
    return min(WINDOW, WINDOW_PER_ACCOUNT * accounts)


# ---------------------------------------------------------------------------------------
# HTTP


async def post_txs(session: AsyncHttp, url: str, raws: list[bytes]) -> list[dict[str, Any]]:
    """POST a batch; one result per tx, `{"hash"}` or `{"error": {"code", "message"}}`."""
    data = msgpack.packb(raws, use_bin_type=True)
    body = await session.post(f"{url}/v1/transactions/batch", data, MSGPACK)
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise PrefillError(f"POST {url}/v1/transactions/batch: unexpected answer {body!r:.200}")
    results: list[dict[str, Any]] = body["results"]
    return results


async def wait_committed(session: AsyncHttp, url: str, tx_hash: str) -> int:
    """The height the tx committed at; PrefillError if it is rejected or still pending."""
    status = await session.get(f"{url}/v1/transactions/{tx_hash}?wait_ms={WAIT_MS}")
    if status["status"] != "committed":
        raise PrefillError(f"tx {tx_hash} is {status['status']}: {status}")
    return int(status["height"])


@dataclass
class ChainCount:
    """Txs in the blocks up to `height`, as read from block headers."""

    height: int = 0
    txs: int = 0

    async def advance(self, session: AsyncHttp, url: str, tip: int) -> None:
        while self.height < tip:
            limit = min(HEADERS_PAGE, tip - self.height)
            page = await session.get(f"{url}/v1/blocks?from={self.height + 1}&limit={limit}")
            for header in page["blocks"]:
                self.txs += int(header["txs"])
                self.height = int(header["height"])
            if not page["blocks"]:
                raise PrefillError(f"{url} has no block {self.height + 1} below its tip {tip}")

    async def catch_up(self, session: AsyncHttp, url: str) -> None:
        status = await session.get(f"{url}/v1/status")
        await self.advance(session, url, int(status["height"]))


# ---------------------------------------------------------------------------------------
# the prefill


@dataclass
class Prefill:
    """A testnet being grown. Kept between event loops (the bench and the restart run in
    between): `sent` is how many transfers of the sequence were sent so far, `count` what
    the followed node's chain holds, `rss_kb` the highest RSS seen per node."""

    target: BenchTarget
    population: Population
    sent: int = 0
    count: ChainCount = field(default_factory=ChainCount)
    rss_kb: dict[str, int] = field(default_factory=dict)

    @property
    def follow_url(self) -> str:
        return self.target.follow_url

    async def fund_banks(self, session: AsyncHttp, nbc_key: PrivateKey) -> None:
        """The central bank issues each bank the riel its new accounts are funded with
        (genesis gives a bank enough for 10,000 of them)."""
        banks = self.population.banks
        issues = tuple(
            Issue(operator_of(bank), "KHR", FUNDING * count)
            for i, bank in enumerate(banks)
            if (count := len(range(i, self.population.count, len(banks))))
        )
        signer = operator_of(CENTRAL_BANK_CODE)
        found = await session.get(f"{self.follow_url}/v1/accounts/{signer}")
        nonce = compute_next_nonce(int(found["nonce"]), found.get("pending_nonces") or [])
        body = TxBody(1, self.target.chain_id, signer, nonce, now_ms(), issues)
        (result,) = await post_txs(session, self.follow_url, [sign_tx(body, nbc_key).encode()])
        if "error" in result:
            raise PrefillError(f"issue refused: {result['error']}", "prefill_refused")
        await wait_committed(session, self.follow_url, result["hash"])

    async def create_accounts(self, session: AsyncHttp) -> float:
        """Create and fund every account, a chunk of setup txs at a time (bakong bench's
        setup: each bank's operator creates its own customers); the seconds it took."""
        n = self.population.count
        meter = Meter("accounts", n)
        for start in range(0, n, SETUP_CHUNK_ACCOUNTS):
            end = min(n, start + SETUP_CHUNK_ACCOUNTS)
            chunk = [self.population.get_account(i) for i in range(start, end)]
            await setup_accounts(session, self.target, chunk, SilentProgress())
            self.sample_rss()
            meter.show(end, f"height {await self._get_height(session)}")
        return meter.done(n)

    async def send_transfers(self, session: AsyncHttp, count: int, urls: Sequence[str]) -> float:
        """Send the next `count` transfers of the sequence to `urls` (account i always to
        the same node, so its nonces arrive in order) and wait until all are in blocks;
        the seconds it took."""
        await self.count.catch_up(session, self.follow_url)
        window = compute_window(self.population.count)
        stream = Stream(
            self, session, tuple(urls), self.count.txs, window, Meter("transfers", count)
        )
        end = self.sent + count
        # workers ignore Ctrl-C: the parent stops them, without a traceback from each
        pool = ProcessPoolExecutor(
            os.cpu_count() or 1,
            get_context("spawn"),
            signal.signal,
            (signal.SIGINT, signal.SIG_IGN),
        )
        stream.follower = asyncio.create_task(stream.follow())
        try:
            signing = self._sign(pool, self.sent, end)
            for start in range(self.sent, end, TRANSFER_CHUNK):
                pieces = await asyncio.gather(*(asyncio.wrap_future(f) for f in next(signing)))
                await stream.send_chunk(start, [raw for raws, _ in pieces for raw in raws])
                self.sent = min(end, start + TRANSFER_CHUNK)
            await stream.wait_committed(count)
        finally:
            stream.stop = True
            await asyncio.gather(stream.follower, return_exceptions=True)
            pool.shutdown(wait=True, cancel_futures=True)
        return stream.meter.done(stream.committed)

    def _sign(self, pool: ProcessPoolExecutor, start: int, end: int) -> Iterator[list[Future[Any]]]:
        """Each chunk's signing futures; the next chunk is submitted before this one is
        handed out, so the workers sign it while this one is sent."""
        chain_id = self.target.chain_id
        chunks = range(start, end, TRANSFER_CHUNK)

        def submit(first: int) -> list[Future[Any]]:
            last = min(end, first + TRANSFER_CHUNK)
            jobs = make_transfer_jobs(chain_id, self.population, first, last, now_ms())
            return [pool.submit(sign_job, job) for job in jobs]

        ahead = submit(chunks[0]) if chunks else []
        for i in range(len(chunks)):
            current = ahead
            ahead = submit(chunks[i + 1]) if i + 1 < len(chunks) else []
            yield current

    async def _get_height(self, session: AsyncHttp) -> int:
        status = await session.get(f"{self.follow_url}/v1/status")
        return int(status["height"])

    def sample_rss(self) -> None:
        for name, pid in self.target.pids.items():
            rss = read_rss_kb(pid)
            if rss is not None:
                self.rss_kb[name] = max(self.rss_kb.get(name, 0), rss)


@dataclass
class Stream:
    """One run of `send_transfers`: its senders share these counters (one loop, no locks)."""

    prefill: Prefill
    session: AsyncHttp
    urls: tuple[str, ...]
    base_txs: int  # txs in the chain before this run
    window: int
    meter: Meter
    follower: asyncio.Task[None] | None = None
    accepted: int = 0
    stop: bool = False
    last_progress: float = field(default_factory=time.monotonic)

    @property
    def committed(self) -> int:
        return self.prefill.count.txs - self.base_txs

    async def follow(self) -> None:
        """Count the txs of new blocks; sample the nodes' RSS on the way."""
        count = self.prefill.count
        while not self.stop:
            before = count.txs
            await count.catch_up(self.session, self.prefill.follow_url)
            if count.txs > before:
                self.last_progress = time.monotonic()
            self.prefill.sample_rss()
            self.meter.show(self.committed, f"height {count.height}")
            await asyncio.sleep(POLL_S)

    async def send_chunk(self, start: int, raws: list[bytes]) -> None:
        """Send transfers `start`.. (their raw txs in order), one sender per node."""
        n = self.prefill.population.count
        buckets: list[list[bytes]] = [[] for _ in self.urls]
        for offset, raw in enumerate(raws):
            buckets[((start + offset) % n) % len(self.urls)].append(raw)
        await asyncio.gather(
            *(self._send(url, b) for url, b in zip(self.urls, buckets, strict=True))
        )

    async def _send(self, url: str, raws: list[bytes]) -> None:
        for first in range(0, len(raws), BATCH):
            batch = raws[first : first + BATCH]
            retrying = False
            while batch:
                await self._wait_room(len(batch))
                results = await post_txs(self.session, url, batch)
                batch = self._take_results(url, batch, results, retrying)
                if batch:
                    retrying = True
                    await asyncio.sleep(RETRY_PAUSE_S)

    def _take_results(
        self, url: str, batch: list[bytes], results: list[dict[str, Any]], retrying: bool
    ) -> list[bytes]:
        """Count the accepted txs; the ones to send again, in order."""
        again = []
        for raw, result in zip(batch, results, strict=True):
            code = result["error"]["code"] if "error" in result else None
            if code is None or (retrying and code in ALREADY_IN):
                self.accepted += 1
            elif code in RETRY_CODES:
                again.append(raw)
            else:
                message = result["error"]["message"]
                raise PrefillError(
                    f"{url} refused a transfer: {code}: {message}", "prefill_refused"
                )
        return again

    async def _wait_room(self, count: int) -> None:
        while self.accepted - self.committed + count > self.window:
            self._check_stall()
            await asyncio.sleep(POLL_S)

    async def wait_committed(self, count: int) -> None:
        while self.committed < count:
            self._check_stall()
            await asyncio.sleep(POLL_S)

    def _check_stall(self) -> None:
        """Raise the follower's error if it died; PrefillError when blocks stopped coming."""
        if self.follower is not None and self.follower.done():
            self.follower.result()
            raise PrefillError("the block follower stopped")
        if time.monotonic() - self.last_progress > STALL_S:
            raise PrefillError(
                f"no block for {STALL_S:g} s with {self.accepted - self.committed:,} txs pending "
                f"(height {self.prefill.count.height})",
                "prefill_stalled",
            )


@dataclass
class Meter:
    """Progress of a long phase as a line on stderr every few seconds: done, rate, ETA."""

    what: str
    total: int
    started: float = field(default_factory=time.monotonic)
    shown: float = field(default_factory=time.monotonic)

    def show(self, done: int, info: str) -> None:
        now = time.monotonic()
        if now - self.shown < REPORT_EVERY_S:
            return
        self.shown = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (
            f", ETA {format_duration((self.total - done) / rate)}"
            if rate and self.total > done
            else ""
        )
        print(
            f"  {self.what}: {done:,} / {self.total:,} ({rate:,.0f}/s{eta}), {info}",
            file=sys.stderr,
            flush=True,
        )

    def done(self, done: int) -> float:
        elapsed = time.monotonic() - self.started
        print(f"  {self.what}: {done:,} in {format_duration(elapsed)}", file=sys.stderr, flush=True)
        return elapsed


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def now_ms() -> int:
    return int(time.time() * 1000)
