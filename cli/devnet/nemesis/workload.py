"""Jepsen's bank test against the nodes' HTTP API, and an observer of their status.

Accounts: `count` customer accounts spread over the commercial banks, each with its own
key, funded by their banks at setup; their KHR total is fixed from then on (only the
workload moves money among them).

Clients: each owns some accounts (it alone signs for them, so it alone picks their
nonces) and loops: a transfer from one of its accounts to any account, or a read. Every
operation goes through a node chosen at random and is recorded as `invoke`, then
- `ok`: committed (the height it committed at), or a read at one height;
- `fail`: definitely not applied: refused at admission (a 4xx, or no connection at
  all), or reported `rejected` by a node;
- `info`: unknown (a timeout, a reset connection, a 5xx, still pending at the deadline).

A read at one height: `GET /v1/status`, `GET /v1/accounts?limit=1000`, `GET /v1/status`
on one node; when both statuses name the same height and block, the page is the state at
that height. That holds because a node commits a block (one store batch) and moves its
tip in one synchronous step of its event loop, and each request is answered in one step
too: no commit can fall inside the page without moving the second status. Otherwise it
retries (at most a few times, then the read fails, which claims nothing).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from cli import http
from cli.devnet.nemesis.history import History
from cli.http import NodeReplyError, NodeUnreachable
from ledger.commands import Command, CreateAccount, Transfer
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxBody, sign_tx

ASSET: Final = "KHR"
TX_VERSION: Final = 1
_SUBMIT_TIMEOUT_S: Final = 3.0
_STATUS_WAIT_S: Final = 2.0
_READ_ATTEMPTS: Final = 4


@dataclass(frozen=True, slots=True)
class WorkloadAccount:
    id: str
    key: PrivateKey


@dataclass
class Nodes:
    """Where the workload finds the nodes: name -> API URL."""

    urls: dict[str, str]

    @property
    def names(self) -> list[str]:
        return list(self.urls)

    def get(self, name: str, path: str, timeout: float = 5.0) -> Any:
        return http.send("GET", self.urls[name] + path, timeout=timeout)

    def post_tx(self, name: str, tx: SignedTx, timeout: float = _SUBMIT_TIMEOUT_S) -> Any:
        return http.send(
            "POST",
            self.urls[name] + "/v1/transactions",
            tx.encode(),
            timeout=timeout,
            content_type=http.MSGPACK,
        )


def now_ms() -> int:
    return int(time.time() * 1000)


def sign(
    chain_id: str, signer: str, nonce: int, commands: Sequence[Command], key: PrivateKey
) -> SignedTx:
    body = TxBody(TX_VERSION, chain_id, signer, nonce, now_ms(), tuple(commands), "")
    return sign_tx(body, key)


# ---------------------------------------------------------------------------------------
# outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    type: str  # ok | fail | info
    height: int | None = None
    error: str | None = None


def submit(nodes: Nodes, node: str, tx: SignedTx) -> Outcome | None:
    """Post `tx` to `node`: None when admitted (202), else its definite or unknown outcome."""
    try:
        nodes.post_tx(node, tx)
    except NodeReplyError as exc:
        # a 4xx in the node's envelope: refused before it was admitted anywhere (we send
        # each tx to one node). A bare HTTP error is not the node's word (something else
        # answered on the path): unknown, like a 5xx.
        definite = 400 <= exc.status < 500 and exc.code != "http_error"
        kind = "fail" if definite else "info"
        return Outcome(kind, error=f"{exc.code}: {exc.message}"[:200])
    except NodeUnreachable as exc:
        # no connection at all: nothing was sent; anything later: unknown
        kind = "fail" if "connection refused" in exc.reason else "info"
        return Outcome(kind, error=exc.reason[:200])
    return None


def await_outcome(
    nodes: Nodes, tx_hash: str, first: str, timeout: float, rng: random.Random
) -> Outcome:
    """Ask `first`, then the other nodes in turn, until one says committed or rejected,
    or `timeout` passes (info: unknown)."""
    others = [n for n in nodes.names if n != first]
    rng.shuffle(others)
    order = [first, *others]
    deadline = time.monotonic() + timeout
    i = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return Outcome("info", error="timeout: still pending or unknown")
        node = order[i % len(order)]
        i += 1
        wait = min(_STATUS_WAIT_S, left)
        started = time.monotonic()
        try:
            status = nodes.get(
                node, f"/v1/transactions/{tx_hash}?wait_ms={int(wait * 1000)}", timeout=wait + 3
            )
        except (NodeReplyError, NodeUnreachable):
            status = None
        if isinstance(status, dict):
            if status.get("status") == "committed" and isinstance(status.get("height"), int):
                return Outcome("ok", height=status["height"])
            if status.get("status") == "rejected":
                return Outcome("fail", error=f"rejected by {node}: {status.get('error')}")
        # answered at once (unknown there, or down): do not spin
        if time.monotonic() - started < 0.1:
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------
# reads


def read_at_one_height(
    nodes: Nodes, node: str, accounts: Sequence[str], timeout: float = 3.0
) -> tuple[int, dict[str, int]] | None:
    """(height, KHR balance per account) read on `node` at one height, or None."""
    for _ in range(_READ_ATTEMPTS):
        try:
            before = nodes.get(node, "/v1/status", timeout=timeout)
            page = nodes.get(node, "/v1/accounts?limit=1000", timeout=timeout)
            after = nodes.get(node, "/v1/status", timeout=timeout)
        except (NodeReplyError, NodeUnreachable):
            return None
        same = (before.get("height"), before.get("block_hash")) == (
            after.get("height"),
            after.get("block_hash"),
        )
        if not same or not isinstance(page, dict) or page.get("next") is not None:
            continue
        found = {a["account"]: a["balances"].get(ASSET, "0") for a in page["accounts"]}
        if any(account not in found for account in accounts):
            return None
        return int(before["height"]), {a: int(found[a]) for a in accounts}
    return None


# ---------------------------------------------------------------------------------------
# setup


def setup_accounts(
    nodes: Nodes,
    chain_id: str,
    operators: Mapping[str, PrivateKey],
    count: int,
    initial: int,
    history: History,
    timeout: float = 60.0,
) -> list[WorkloadAccount]:
    """`count` new customer accounts over the banks of `operators` (round robin), each
    funded with `initial` KHR by its bank, one tx per bank through the bank's own node
    when there is one. Records a `setup` entry with the accounts, total and a baseline
    read at one height."""
    banks = sorted(operators)
    accounts = [
        WorkloadAccount(f"jepsen{i}@{banks[i % len(banks)]}", PrivateKey.generate())
        for i in range(count)
    ]
    rng = random.Random(0)
    txs = []
    for bank in banks:
        mine = [a for a in accounts if a.id.endswith(f"@{bank}")]
        if not mine:
            continue
        operator = f"admin@{bank}"
        node = bank if bank in nodes.urls else nodes.names[0]
        nonce = int(nodes.get(node, f"/v1/accounts/{operator}")["nonce"])
        commands: list[Command] = [CreateAccount(a.id, a.key.public_key) for a in mine]
        commands += [Transfer(operator, a.id, ASSET, initial) for a in mine]
        tx = sign(chain_id, operator, nonce, commands, operators[bank])
        refused = submit(nodes, node, tx)
        if refused is not None:
            raise RuntimeError(f"setup tx of {bank} refused: {refused.error}")
        txs.append((tx.hash.hex(), node))
    for tx_hash, node in txs:
        outcome = await_outcome(nodes, tx_hash, node, timeout, rng)
        if outcome.type != "ok":
            raise RuntimeError(f"setup tx {tx_hash[:16]} did not commit: {outcome.error}")
    ids = [a.id for a in accounts]
    deadline = time.monotonic() + timeout
    while (read := read_at_one_height(nodes, nodes.names[0], ids)) is None or any(
        read[1][a] != initial for a in ids
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the funded accounts could not be read at one height")
        time.sleep(0.2)
    history.add(
        "setup",
        f="accounts",
        value={
            "accounts": ids,
            "asset": ASSET,
            "initial": initial,
            "total": initial * count,
            "baseline": {"height": read[0], "balances": read[1]},
            "txs": [h for h, _ in txs],
        },
    )
    return accounts


# ---------------------------------------------------------------------------------------
# clients


@dataclass
class ClientStats:
    ok: int = 0
    fail: int = 0
    info: int = 0
    reads: int = 0


class Client(threading.Thread):
    def __init__(
        self,
        process: int,
        nodes: Nodes,
        chain_id: str,
        own: Sequence[WorkloadAccount],
        everyone: Sequence[str],
        history: History,
        stop: threading.Event,
        *,
        seed: int,
        op_timeout: float,
        read_ratio: float,
        max_amount: int,
    ) -> None:
        super().__init__(name=f"client-{process}", daemon=True)
        self.process = process
        self.nodes = nodes
        self.chain_id = chain_id
        self.own = list(own)
        self.everyone = list(everyone)
        self.history = history
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.op_timeout = op_timeout
        self.read_ratio = read_ratio
        self.max_amount = max_amount
        self.next_nonce = {a.id: 0 for a in self.own}
        self.stats = ClientStats()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if not self.own or self.rng.random() < self.read_ratio:
                    self.read()
                else:
                    self.transfer()
            except Exception as exc:  # recorded, never fatal: a client is a user
                self.history.add("client_error", process=self.process, error=repr(exc)[:300])
                self.stop_event.wait(0.5)
            self.stop_event.wait(self.rng.uniform(0.0, 0.05))

    def read(self) -> None:
        node = self.rng.choice(self.nodes.names)
        self.history.add("invoke", process=self.process, f="read", node=node)
        read = read_at_one_height(self.nodes, node, self.everyone)
        self.stats.reads += 1
        if read is None:
            self.history.add("fail", process=self.process, f="read", node=node)
        else:
            height, balances = read
            value = {"height": height, "balances": balances}
            self.history.add("ok", process=self.process, f="read", node=node, value=value)

    def transfer(self) -> None:
        account = self.rng.choice(self.own)
        to = self.rng.choice([a for a in self.everyone if a != account.id])
        amount = self.rng.randint(1, self.max_amount)
        nonce = self.next_nonce[account.id]
        node = self.rng.choice(self.nodes.names)
        tx = sign(
            self.chain_id, account.id, nonce, [Transfer(account.id, to, ASSET, amount)], account.key
        )
        tx_hash = tx.hash.hex()
        value = {"hash": tx_hash, "from": account.id, "to": to, "amount": amount, "nonce": nonce}
        self.history.add("invoke", process=self.process, f="transfer", node=node, value=value)
        outcome = submit(self.nodes, node, tx)
        if outcome is None:
            outcome = await_outcome(self.nodes, tx_hash, node, self.op_timeout, self.rng)
        record = dict(value)
        if outcome.height is not None:
            record["height"] = outcome.height
        fields: dict[str, Any] = {"error": outcome.error} if outcome.error else {}
        self.history.add(
            outcome.type, process=self.process, f="transfer", node=node, value=record, **fields
        )
        if outcome.type == "ok":
            self.stats.ok += 1
            self.next_nonce[account.id] = nonce + 1
        else:
            setattr(self.stats, outcome.type, getattr(self.stats, outcome.type) + 1)
            self._resync_nonce(account.id, nonce)
            if outcome.type == "fail" and "nonce" in (outcome.error or ""):
                # an earlier tx of this nonce is still pending somewhere: let it settle
                self.stop_event.wait(self.rng.uniform(0.2, 0.6))

    def _resync_nonce(self, account: str, tried: int) -> None:
        """After a failure or an unknown outcome: the committed nonce as the nodes see it
        (the highest of two), never below what this client knows is committed."""
        known = self.next_nonce[account]
        for node in self.rng.sample(self.nodes.names, min(2, len(self.nodes.names))):
            try:
                body = self.nodes.get(node, f"/v1/accounts/{account}", timeout=2.0)
                known = max(known, int(body["nonce"]))
            except (NodeReplyError, NodeUnreachable, KeyError, TypeError, ValueError):
                continue
        self.next_nonce[account] = known


def start_clients(
    nodes: Nodes,
    chain_id: str,
    accounts: Sequence[WorkloadAccount],
    history: History,
    stop: threading.Event,
    *,
    clients: int,
    seed: int,
    op_timeout: float = 10.0,
    read_ratio: float = 0.1,
    max_amount: int = 100,
) -> list[Client]:
    """`clients` threads; client i signs for accounts i, i + clients, ..."""
    everyone = [a.id for a in accounts]
    started = []
    for i in range(clients):
        own = accounts[i::clients]
        client = Client(
            i,
            nodes,
            chain_id,
            own,
            everyone,
            history,
            stop,
            seed=seed * 1000 + i,
            op_timeout=op_timeout,
            read_ratio=read_ratio,
            max_amount=max_amount,
        )
        client.start()
        started.append(client)
    return started


# ---------------------------------------------------------------------------------------
# the observer


@dataclass
class NodeView:
    height: int | None = None
    block_hash: str | None = None
    round: int | None = None
    peers: int | None = None
    seen_at: float = 0.0


class Observer(threading.Thread):
    """Polls every node's /v1/status every `interval` s and records changes of height,
    block hash and reachability (`observe` records): the timeline, the fork check over
    what nodes reported during the run, and the time of the first commit after a heal."""

    def __init__(self, nodes: Nodes, history: History, interval: float = 0.2) -> None:
        super().__init__(name="observer", daemon=True)
        self.nodes = nodes
        self.history = history
        self.interval = interval
        self.stop_event = threading.Event()
        self.views = {name: NodeView() for name in nodes.names}
        self._lock = threading.Lock()

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=len(self.nodes.names)) as pool:
            while not self.stop_event.is_set():
                started = time.monotonic()
                list(pool.map(self._poll, self.nodes.names))
                self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _poll(self, name: str) -> None:
        try:
            body = self.nodes.get(name, "/v1/status", timeout=1.0)
        except (NodeReplyError, NodeUnreachable):
            body = None
        with self._lock:
            view = self.views[name]
            if not isinstance(body, dict):
                if view.height is not None:
                    self.history.add("observe", node=name, down=True)
                self.views[name] = NodeView(seen_at=time.monotonic())
                return
            height, block_hash = body.get("height"), body.get("block_hash")
            changed = (height, block_hash) != (view.height, view.block_hash)
            self.views[name] = NodeView(
                height, block_hash, body.get("round"), body.get("peers"), time.monotonic()
            )
            if changed:
                self.history.add(
                    "observe",
                    node=name,
                    height=height,
                    block_hash=block_hash,
                    round=body.get("round"),
                )

    def snapshot(self) -> dict[str, NodeView]:
        with self._lock:
            return dict(self.views)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
