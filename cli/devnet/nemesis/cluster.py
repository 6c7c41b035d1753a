"""A `testnet init --hosts` network whose nodes run inside the namespaces of a `Network`:
start, stop, kill -9, pause and resume nodes, run one with its clock skewed, give each a
data directory on a small tmpfs, and read their status through the bridge.

    root/testnet/          the testnet home (init_testnet with hosts = the namespaces'
                           addresses: every node on the same two ports of its own host)
    node i                 `ip netns exec <ns i> env BAKONG_TEST_MODE=1
                            [BAKONG_TEST_CLOCK_SKEW_MS=S] python -m cli.main node run
                            --home <node dir>`

Node processes are children of this process (so their exit status is known: a node
that stops on a full disk must exit non-zero) and detached into their own sessions; the
network's removal kills whatever still runs in the namespaces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from cli import http
from cli.devnet.nemesis.netns import Network
from cli.devnet.testnet import (
    CONFIG_FILE,
    OUT_FILE,
    Manifest,
    fetch_node_status,
    get_node_dir,
    init_testnet,
    start_node,
    wait_until_ready,
)
from cli.http import NodeReplyError, NodeUnreachable
from node.config import ConsensusConfig, NodeConfig, load_config, render_config

TEST_MODE_ENV: Final = "BAKONG_TEST_MODE"
CLOCK_SKEW_ENV: Final = "BAKONG_TEST_CLOCK_SKEW_MS"
BASE_PORT: Final = 26656
DATA_DIR: Final = "data"
FILLER_FILE: Final = "nemesis-filler"

# Round timeouts a little shorter than the defaults: the fault windows are seconds long.
# A heartbeat block after 1 s without txs: the chain's progress does not depend on
# whether the clients are all stuck on a paused node.
CONSENSUS: Final = ConsensusConfig(
    timeout_propose_ms=600,
    timeout_propose_delta_ms=300,
    timeout_prevote_ms=300,
    timeout_prevote_delta_ms=150,
    timeout_precommit_ms=300,
    timeout_precommit_delta_ms=150,
    timeout_commit_ms=50,
    heartbeat_ms=1000,
)
_POLL_S: Final = 0.05
_STOP_GRACE_S: Final = 10.0


@dataclass
class ClusterNode:
    name: str
    bank: str
    validator: bool
    dir: Path
    url: str
    address: str
    pid: int | None = None
    skew_ms: int = 0
    paused: bool = False
    # the size of node.out when the current process started: what it printed since
    out_offset: int = 0
    # wait status of the last process once reaped (None while it runs or never ran)
    exit_status: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Cluster:
    """Use as a context manager: `close` stops every node and removes the network."""

    def __init__(self, home: Path, network: Network, manifest: Manifest) -> None:
        self.home = home
        self.network = network
        self.manifest = manifest
        self.nodes: dict[str, ClusterNode] = {
            entry.name: ClusterNode(
                name=entry.name,
                bank=entry.bank,
                validator=entry.validator,
                dir=get_node_dir(home, entry),
                url=entry.http_url,
                address=network.address(entry.name),
            )
            for entry in manifest.nodes
        }
        self.mounted: list[Path] = []

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        validators: int = 4,
        observers: int = 1,
        consensus: ConsensusConfig = CONSENSUS,
        p2p: Mapping[str, int] | None = None,
        disk_bytes: int | None = None,
        configure: Callable[[NodeConfig], NodeConfig] | None = None,
    ) -> Cluster:
        """Namespaces for every node, a testnet in `root/testnet` on their addresses,
        `p2p` settings (e.g. dead_peer_timeout_ms) in every node.toml, and with
        `disk_bytes` each node's data directory on a tmpfs of that size."""
        count = validators + observers
        network = Network.create([f"node{i}" for i in range(count)])
        try:
            home = root / "testnet"
            manifest = init_testnet(
                home,
                validators=validators,
                observers=observers,
                base_port=BASE_PORT,
                consensus=consensus,
                hosts=[network.hosts[f"node{i}"].address for i in range(count)],
                force=True,
            )
            network.relabel([entry.name for entry in manifest.nodes])
            cluster = cls(home, network, manifest)
            for node in cluster.nodes.values():
                path = node.dir / CONFIG_FILE
                config = load_config(path)
                if p2p:
                    config = replace(config, p2p=replace(config.p2p, **dict(p2p)))  # type: ignore[arg-type]
                if configure is not None:
                    config = configure(config)
                path.write_text(render_config(config))
                if disk_bytes is not None:
                    data = config.data_path
                    network.mount_tmpfs(data, disk_bytes)
                    cluster.mounted.append(data)
        except BaseException:
            network.close()
            raise
        return cluster

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    @property
    def validators(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.validator]

    def url(self, name: str) -> str:
        return self.nodes[name].url

    def config(self, name: str) -> NodeConfig:
        return load_config(self.nodes[name].dir / CONFIG_FILE)

    # processes

    def command(self, name: str, node_dir: Path) -> list[str]:
        node = self.nodes[name]
        env = ["env", "-u", CLOCK_SKEW_ENV, f"{TEST_MODE_ENV}=1"]
        if node.skew_ms:
            env.append(f"{CLOCK_SKEW_ENV}={node.skew_ms}")
        node_cmd = [sys.executable, "-m", "cli.main", "node", "run", "--home", str(node_dir)]
        return [*self.network.exec_args(name), *env, *node_cmd]

    def start(self, name: str, *, skew_ms: int = 0) -> int:
        """Start `name` in its namespace (its clock `skew_ms` off); its pid."""
        node = self.nodes[name]
        if self.is_running(name):
            raise RuntimeError(f"{name} is already running")
        node.skew_ms = skew_ms
        out = node.dir / OUT_FILE
        node.out_offset = out.stat().st_size if out.exists() else 0
        node.exit_status = None
        node.paused = False
        node.pid = start_node(node.dir, lambda d: self.command(name, d))
        return node.pid

    def start_all(self, timeout: float = 90.0) -> None:
        for name in self.nodes:
            if not self.is_running(name):
                self.start(name)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Every node serves and every validator sees all other validators."""
        wait_until_ready(self.home, self.manifest, timeout=timeout)

    def poll_exit(self, name: str) -> int | None:
        """The wait status of `name`'s process once it has exited (reaping it), else None."""
        node = self.nodes[name]
        if node.pid is None:
            return node.exit_status
        try:
            waited, status = os.waitpid(node.pid, os.WNOHANG)
        except ChildProcessError:
            # not our child (or reaped elsewhere): alive while signal 0 reaches it
            try:
                os.kill(node.pid, 0)
                return None
            except ProcessLookupError:
                waited, status = node.pid, -1
        if waited == 0:
            return None
        node.pid = None
        node.exit_status = status
        node.paused = False
        return status

    def is_running(self, name: str) -> bool:
        return self.nodes[name].pid is not None and self.poll_exit(name) is None

    def wait_exit(self, name: str, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.poll_exit(name)
            if status is not None or self.nodes[name].pid is None:
                return status
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)

    def signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.nodes[name].pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self, name: str) -> None:
        """SIGKILL and wait until the process is gone."""
        self.signal(name, signal.SIGKILL)
        if self.wait_exit(name, 30.0) is None and self.nodes[name].pid is not None:
            raise RuntimeError(f"{name} survived SIGKILL")

    def stop(self, name: str, grace: float = _STOP_GRACE_S) -> None:
        """SIGTERM (after SIGCONT, should it be paused), SIGKILL after `grace` s."""
        if not self.is_running(name):
            return
        self.resume(name)
        self.signal(name, signal.SIGTERM)
        if self.wait_exit(name, grace) is None and self.nodes[name].pid is not None:
            self.kill(name)

    def pause(self, name: str) -> None:
        self.signal(name, signal.SIGSTOP)
        self.nodes[name].paused = True

    def resume(self, name: str) -> None:
        if self.nodes[name].paused:
            self.signal(name, signal.SIGCONT)
            self.nodes[name].paused = False

    def new_output(self, name: str) -> str:
        """What the node's current (or last) process printed to node.out."""
        node = self.nodes[name]
        try:
            with (node.dir / OUT_FILE).open("rb") as f:
                f.seek(node.out_offset)
                return f.read(64 * 1024).decode(errors="replace")
        except OSError:
            return ""

    # the API, through the bridge

    def status(self, name: str, timeout: float = 1.0) -> dict[str, Any] | None:
        return fetch_node_status(self.url(name), timeout=timeout)

    def get(self, name: str, path: str, timeout: float = 5.0) -> Any:
        """GET `path` of `name`'s API; None when it does not answer (or answers an error)."""
        try:
            return http.send("GET", self.url(name) + path, timeout=timeout)
        except (NodeReplyError, NodeUnreachable):
            return None

    # disks

    def data_dir(self, name: str) -> Path:
        return self.config(name).data_path

    def fill_disk(self, name: str) -> int:
        """Fill `name`'s tmpfs with a filler file (unbuffered: nothing is left to flush
        into a full disk); the bytes it took."""
        path = self.data_dir(name) / FILLER_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        written = 0
        try:
            stat = os.fstatvfs(fd)
            free = stat.f_bavail * stat.f_frsize
            with contextlib.suppress(OSError):
                os.posix_fallocate(fd, 0, max(free, 1))
                written = free
            os.lseek(fd, 0, os.SEEK_END)
            chunk = b"\0" * 4096
            with contextlib.suppress(OSError):
                while (n := os.write(fd, chunk)) > 0:
                    written += n
        finally:
            os.close(fd)
        return written

    def free_disk(self, name: str) -> None:
        (self.data_dir(name) / FILLER_FILE).unlink(missing_ok=True)

    # partitions (see Network.set_blocked)

    def set_blocked(self, blocked: Mapping[str, set[str]]) -> None:
        self.network.set_blocked(blocked)

    def heal_network(self) -> None:
        self.network.heal()

    # teardown

    def close(self) -> None:
        """Stop every node (SIGCONT first, SIGTERM, SIGKILL after a grace), remove the
        network (namespaces, links, mounts, anything still running in them)."""
        try:
            for name in self.nodes:
                with contextlib.suppress(Exception):
                    self.resume(name)
            for name in self.nodes:
                self.signal(name, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            for name in self.nodes:
                self.wait_exit(name, max(0.0, deadline - time.monotonic()))
            for name in self.nodes:
                if self.nodes[name].pid is not None:
                    with contextlib.suppress(Exception):
                        self.kill(name)
        finally:
            self.network.close()
