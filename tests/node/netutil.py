"""A real local testnet for integration tests: processes on 127.0.0.1, free ports, a
temporary home, fast consensus timeouts, always stopped. Waits poll conditions; no fixed
sleeps."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.devnet.testnet import (
    Manifest,
    TestnetError,
    down_testnet,
    get_node_dir,
    get_node_pid,
    init_testnet,
    up_testnet,
)
from cli.devnet.testnet import find_free_base as devnet_find_free_base
from ledger.commands import Command, Issue, Transfer
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxBody, sign_tx
from node.config import ConsensusConfig, NodeConfig, load_config, render_config
from node.keyfile import read_key_file

FAST = ConsensusConfig(
    timeout_propose_ms=400,
    timeout_propose_delta_ms=200,
    timeout_prevote_ms=200,
    timeout_prevote_delta_ms=100,
    timeout_precommit_ms=200,
    timeout_precommit_delta_ms=100,
    timeout_commit_ms=20,
)


def find_free_base(count: int) -> int:
    """A base port with `count` consecutive free ports after it, below the kernel's
    ephemeral range (`cli.devnet.testnet.find_free_base`)."""
    return devnet_find_free_base(count)


def http(
    url: str,
    body: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        request.add_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


@dataclass
class Net:
    home: Path
    manifest: Manifest
    nonces: dict[str, int] = field(default_factory=dict)

    @property
    def chain_id(self) -> str:
        return self.manifest.chain_id

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.manifest.nodes]

    @property
    def validators(self) -> list[str]:
        return [n.name for n in self.manifest.nodes if n.validator]

    def node(self, name: str) -> Any:
        return next(n for n in self.manifest.nodes if n.name == name)

    def url(self, name: str) -> str:
        return self.node(name).http_url

    def node_dir(self, name: str) -> Path:
        return get_node_dir(self.home, self.node(name))

    def operator_key(self, bank: str) -> PrivateKey:
        return read_key_file(self.node_dir(bank) / "operator_key.json")

    def status(self, name: str) -> dict[str, Any] | None:
        try:
            code, body = http(self.url(name) + "/v1/status", timeout=2.0)
        except OSError:
            return None
        return body if code == 200 else None

    def heights(self, names: list[str] | None = None) -> dict[str, int | None]:
        out = {}
        for name in names or self.names:
            s = self.status(name)
            out[name] = s["height"] if s else None
        return out

    def sign(
        self,
        signer_bank: str,
        commands: tuple[Command, ...],
        nonce: int | None = None,
        chain_id: str | None = None,
        created_at: int | None = None,
    ) -> SignedTx:
        signer = f"admin@{signer_bank}"
        if nonce is None:
            nonce = self.nonces.get(signer, 0)
            self.nonces[signer] = nonce + 1
        body = TxBody(
            1,
            chain_id or self.chain_id,
            signer,
            nonce,
            created_at or int(time.time() * 1000),
            commands,
            "",
        )
        return sign_tx(body, self.operator_key(signer_bank))

    def transfer(self, from_bank: str, to_bank: str, amount: int = 1) -> SignedTx:
        cmd = Transfer(f"admin@{from_bank}", f"admin@{to_bank}", "KHR", amount)
        return self.sign(from_bank, (cmd,))

    def issue(self, to_bank: str, amount: int = 1) -> SignedTx:
        return self.sign("nbc", (Issue(f"admin@{to_bank}", "KHR", amount),))

    def submit(self, name: str, tx: SignedTx) -> tuple[int, Any]:
        body = json.dumps({"tx": tx.encode().hex()}).encode()
        return http(self.url(name) + "/v1/transactions", body)

    def tx_status(self, name: str, tx_hash: str, wait_ms: int = 0) -> dict[str, Any] | None:
        try:
            code, body = http(
                f"{self.url(name)}/v1/transactions/{tx_hash}?wait_ms={wait_ms}",
                timeout=wait_ms / 1000 + 10,
            )
        except OSError:
            return None
        return body if code == 200 else None

    def wait_committed(self, name: str, hashes: list[str], timeout: float = 60.0) -> None:
        def done() -> bool:
            for h in hashes:
                s = self.tx_status(name, h, wait_ms=1000)
                if not s or s["status"] != "committed":
                    return False
            return True

        wait_for(done, timeout, f"{len(hashes)} txs committed on {name}")

    def wait_converged(self, names: list[str] | None = None, timeout: float = 60.0) -> dict:
        def same() -> dict | None:
            statuses = [self.status(n) for n in names or self.names]
            if any(s is None for s in statuses):
                return None
            keys = {(s["height"], s["block_hash"], s["state_hash"]) for s in statuses}
            return statuses[0] if len(keys) == 1 else None

        return wait_for(same, timeout, "all nodes at the same height, block and state hash")

    def pid(self, name: str) -> int | None:
        return get_node_pid(self.node_dir(name))

    def kill(self, name: str) -> None:
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.status(name) is None, 10, f"{name} down")
        wait_for(lambda: not _alive(pid), 10, f"{name} process gone")

    def up(self, timeout: float = 90.0) -> None:
        up_testnet(self.home, timeout=timeout)

    def metrics(self, name: str) -> str:
        with urllib.request.urlopen(self.url(name) + "/metrics", timeout=5) as response:
            return response.read().decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def init_on_free_ports(home: Path, *, validators: int, observers: int, **options: Any) -> Manifest:
    """`init_testnet` on free ports, trying again (over the old home) when another test
    took them between the check and the bind."""
    for attempt in range(5):
        try:
            return init_testnet(
                home,
                validators=validators,
                observers=observers,
                base_port=find_free_base(2 * (validators + observers)),
                force=attempt > 0,
                **options,
            )
        except TestnetError as exc:
            if exc.code != "port_in_use" or attempt == 4:
                raise
    raise AssertionError("unreachable")


@contextmanager
def running_testnet(
    tmp: Path,
    validators: int = 4,
    observers: int = 1,
    consensus: ConsensusConfig = FAST,
    configure: Callable[[NodeConfig], NodeConfig] | None = None,
) -> Iterator[Net]:
    """A testnet started in `tmp` (always stopped); `configure` may change every node's
    config before the nodes start."""
    home = tmp / "testnet"
    manifest = init_on_free_ports(
        home, validators=validators, observers=observers, consensus=consensus
    )
    net = Net(home, manifest)
    if configure is not None:
        for node in manifest.nodes:
            path = get_node_dir(home, node) / "node.toml"
            path.write_text(render_config(configure(load_config(path))))
    try:
        net.up()
        yield net
    finally:
        down_testnet(home, grace=5.0)
