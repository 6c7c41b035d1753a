"""The testnet manager without the real node: layout, pid checks, up/status/down.

Processes here are dummies (`time.sleep`) or a tiny fake node serving /v1/status; every
one is killed by the `procs` fixture whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cli.devnet import testnet as tn
from cli.devnet.processes import get_cmdline, is_process_alive, write_pid_file
from genesis.errors import GenesisError
from genesis.load import load_genesis_file
from ledger.crypto import PrivateKey
from ledger.ids import AccountId
from node.config import ConsensusConfig, load_config
from node.keyfile import read_key_file
from tests.node.netutil import find_free_base

FAKE_NODE = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

node_dir, port, peers, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
print("fake node starting", node_dir, flush=True)
time.sleep(delay)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/v1/status":
            self.send_error(404)
            return
        body = json.dumps({
            "chain_id": "test-chain", "node": node_dir, "height": 7,
            "block_hash": "ab" * 32, "state_hash": "cd" * 32,
            "validator": True, "peers": peers,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

SLEEPER = "import signal, sys, time; {}time.sleep(60)"


def accept_any(pid: int, node_dir: Path) -> bool:
    return True


def make_home(home: Path, validators: int = 2, observers: int = 1) -> tn.Manifest:
    """A manifest and node folders, no genesis: enough for the process logic."""
    banks = [(f"bank{i}", i < validators) for i in range(validators + observers)]
    nodes = tn.plan_nodes(banks, find_free_base(2 * len(banks)))
    manifest = tn.Manifest("test-chain", 1_700_000_000_000, nodes[0].p2p_port, nodes)
    for node in nodes:
        tn.get_node_dir(home, node).mkdir(parents=True)
    (home / tn.MANIFEST_FILE).write_text(json.dumps(manifest.to_json()))
    return manifest


def wait_exec(pid: int) -> int:
    """Popen returns once exec has begun, but the kernel shows the new command line a
    moment later; tests that check ownership right away wait for it."""
    deadline = time.monotonic() + 10
    while get_cmdline(pid) is None:
        assert time.monotonic() < deadline, "child never showed its command line"
        time.sleep(0.005)
    return pid


class Procs:
    """Every process a test started, killed and reaped at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def track(self, pid: int) -> int:
        self.pids.append(pid)
        return pid

    def spawn(self, args: list[str], cwd: Path | None = None) -> int:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, cwd=cwd)
        self.children.append(child)
        return wait_exec(child.pid)

    def kill_all(self) -> None:
        for child in self.children:
            child.kill()
            child.wait()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@pytest.fixture
def procs() -> Iterator[Procs]:
    tracker = Procs()
    try:
        yield tracker
    finally:
        tracker.kill_all()


def spawn_sleeper(procs: Procs, node_dir: Path, *extra: str, ignore_term: bool = False) -> int:
    prefix = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    pid = procs.spawn([sys.executable, "-c", SLEEPER.format(prefix), *extra])
    (node_dir / tn.PID_FILE).write_text(f"{pid}\n")
    return pid


def fake_command(
    manifest: tn.Manifest, script: Path, procs: Procs, *, peers: int, delay: float = 0.0
) -> tn.NodeCommand:
    ports = {node.name: node.http_port for node in manifest.nodes}

    def command(node_dir: Path) -> list[str]:
        port = ports[node_dir.name]
        return [sys.executable, str(script), str(node_dir), str(port), str(peers), str(delay)]

    return command


def track_started(home: Path, manifest: tn.Manifest, procs: Procs) -> None:
    for node in manifest.nodes:
        pid_file = tn.get_node_dir(home, node) / tn.PID_FILE
        if pid_file.is_file():
            procs.track(int(pid_file.read_text()))


# ---------------------------------------------------------------------------------------
# layout


def test_plan_nodes_orders_validators_first_with_two_ports_each() -> None:
    nodes = tn.plan_nodes([("nbc", True), ("obs", False), ("aclb", True)], 26600)
    assert [n.name for n in nodes] == ["nbc", "aclb", "obs"]
    assert [(n.p2p_port, n.http_port) for n in nodes] == [
        (26600, 26601),
        (26602, 26603),
        (26604, 26605),
    ]
    assert nodes[2].http_url == "http://127.0.0.1:26605"
    assert nodes[1].dir == "nodes/aclb"
    assert [n.validator for n in nodes] == [True, True, False]


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = make_home(tmp_path)
    assert tn.load_manifest(tmp_path) == manifest


def test_invalid_manifest_missing(tmp_path: Path) -> None:
    with pytest.raises(tn.TestnetError) as err:
        tn.load_manifest(tmp_path)
    assert err.value.code == "testnet_not_found"


def test_invalid_manifest_malformed(tmp_path: Path) -> None:
    make_home(tmp_path)
    raw = json.loads((tmp_path / tn.MANIFEST_FILE).read_text())
    raw["nodes"][0]["http_port"] = "26601"
    (tmp_path / tn.MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(tn.TestnetError) as err:
        tn.load_manifest(tmp_path)
    assert err.value.code == "bad_manifest"


def test_compute_ports() -> None:
    assert tn.compute_ports(30000, 2) == [30000, 30001, 30002, 30003]


@pytest.mark.parametrize("base, count", [(80, 1), (65535, 1), (65530, 5)])
def test_invalid_port_range(base: int, count: int) -> None:
    with pytest.raises(tn.TestnetError) as err:
        tn.compute_ports(base, count)
    assert err.value.code == "invalid_port"


def test_invalid_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(tn.TestnetError) as err:
            tn.check_ports_free([port])
    assert err.value.code == "port_in_use"
    assert str(port) in err.value.message


# ---------------------------------------------------------------------------------------
# pid checks


def test_get_node_pid_basic(tmp_path: Path, procs: Procs) -> None:
    pid = spawn_sleeper(procs, tmp_path, str(tmp_path))
    assert tn.get_node_pid(tmp_path) == pid


def test_invalid_pid_stale(tmp_path: Path, procs: Procs) -> None:
    pid = spawn_sleeper(procs, tmp_path, str(tmp_path))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert tn.get_node_pid(tmp_path, is_ours=accept_any) is None


def test_invalid_pid_not_ours(tmp_path: Path, procs: Procs) -> None:
    # a live process whose pid was reused: its command line does not name the folder
    spawn_sleeper(procs, tmp_path)
    assert tn.get_node_pid(tmp_path) is None


@pytest.mark.parametrize("content", ["", "garbage", "-5", "0"])
def test_invalid_pid_file_content(tmp_path: Path, content: str) -> None:
    (tmp_path / tn.PID_FILE).write_text(content)
    assert tn.get_node_pid(tmp_path, is_ours=accept_any) is None


# ---------------------------------------------------------------------------------------
# status and down


def test_status_of_stopped_testnet(tmp_path: Path) -> None:
    manifest = make_home(tmp_path)
    status = tn.get_testnet_status(tmp_path).to_json()
    assert status["chain_id"] == "test-chain"
    assert [n["name"] for n in status["nodes"]] == [n.name for n in manifest.nodes]
    for row, node in zip(status["nodes"], manifest.nodes, strict=True):
        assert row == {
            "name": node.name,
            "bank": node.bank,
            "validator": node.validator,
            "url": node.http_url,
            "pid": None,
            "running": False,
            "height": None,
            "block_hash": None,
            "state_hash": None,
            "serving": False,
            "peers": None,
            "round": None,
            "mempool": None,
            "mempool_queued": None,
            "catching_up": None,
        }


def test_down_basic_after_a_node_was_killed(tmp_path: Path, procs: Procs) -> None:
    manifest = make_home(tmp_path)
    dirs = [tn.get_node_dir(tmp_path, n) for n in manifest.nodes]
    pids = [spawn_sleeper(procs, d) for d in dirs]
    os.kill(pids[1], signal.SIGKILL)
    os.waitpid(pids[1], 0)
    results = tn.down_testnet(tmp_path, grace=5, is_ours=accept_any)
    assert [(r.name, r.outcome) for r in results] == [
        (manifest.nodes[0].name, "stopped"),
        (manifest.nodes[1].name, "not_running"),
        (manifest.nodes[2].name, "stopped"),
    ]
    assert [r.pid for r in results] == [pids[0], None, pids[2]]
    assert not any((d / tn.PID_FILE).exists() for d in dirs)
    assert not any(is_process_alive(pid) for pid in pids)


def test_down_kills_after_grace(tmp_path: Path, procs: Procs) -> None:
    manifest = make_home(tmp_path, validators=1, observers=0)
    node_dir = tn.get_node_dir(tmp_path, manifest.nodes[0])
    pid = spawn_sleeper(procs, node_dir, ignore_term=True)
    time.sleep(0.3)  # let it install its SIGTERM handler
    (result,) = tn.down_testnet(tmp_path, grace=0.3, is_ours=accept_any)
    assert (result.pid, result.outcome) == (pid, "killed")
    assert not is_process_alive(pid)


def test_down_when_nothing_runs(tmp_path: Path) -> None:
    manifest = make_home(tmp_path)
    stale = tn.get_node_dir(tmp_path, manifest.nodes[0]) / tn.PID_FILE
    stale.write_text("999999999")
    results = tn.down_testnet(tmp_path)
    assert {r.outcome for r in results} == {"not_running"}
    assert not stale.exists()


def test_down_leaves_other_processes_alone(tmp_path: Path, procs: Procs) -> None:
    # a pid file naming a process that is not a node of this folder (pid reuse)
    manifest = make_home(tmp_path, validators=1, observers=0)
    pid = spawn_sleeper(procs, tn.get_node_dir(tmp_path, manifest.nodes[0]))
    (result,) = tn.down_testnet(tmp_path, grace=1)
    assert result.outcome == "not_running"
    assert is_process_alive(pid)


# ---------------------------------------------------------------------------------------
# up against a fake node


@pytest.fixture
def fake_script(tmp_path: Path) -> Path:
    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE)
    return script


def test_up_basic_idempotent_then_down(tmp_path: Path, procs: Procs, fake_script: Path) -> None:
    home = tmp_path / "home"
    manifest = make_home(home)
    command = fake_command(manifest, fake_script, procs, peers=2, delay=0.3)
    seen: list[str] = []
    try:
        status = tn.up_testnet(home, timeout=20, command=command, progress=seen.append)
    finally:
        track_started(home, manifest, procs)
    assert all(n.running and n.height == 7 and n.block_hash == "ab" * 32 for n in status.nodes)
    assert any("waiting for 3 nodes" in line for line in seen)
    pids = [n.pid for n in status.nodes]
    again = tn.up_testnet(home, timeout=20, command=command)
    assert [n.pid for n in again.nodes] == pids
    assert tn.get_testnet_status(home).to_json()["nodes"][0]["state_hash"] == "cd" * 32
    results = tn.down_testnet(home, grace=5)
    assert [r.outcome for r in results] == ["stopped"] * 3
    assert not any(n["running"] for n in tn.get_testnet_status(home).to_json()["nodes"])


def test_up_restarts_only_the_dead_node(tmp_path: Path, procs: Procs, fake_script: Path) -> None:
    home = tmp_path / "home"
    manifest = make_home(home, validators=2, observers=0)
    command = fake_command(manifest, fake_script, procs, peers=1)
    try:
        first = tn.up_testnet(home, timeout=20, command=command)
        assert first.nodes[1].pid is not None
        os.kill(first.nodes[1].pid, signal.SIGKILL)
        os.waitpid(first.nodes[1].pid, 0)
        second = tn.up_testnet(home, timeout=20, command=command)
    finally:
        track_started(home, manifest, procs)
    assert second.nodes[0].pid == first.nodes[0].pid
    assert second.nodes[1].pid not in (None, first.nodes[1].pid)


def test_invalid_up_validators_not_connected(
    tmp_path: Path, procs: Procs, fake_script: Path
) -> None:
    home = tmp_path / "home"
    manifest = make_home(home)
    command = fake_command(manifest, fake_script, procs, peers=0)
    try:
        with pytest.raises(tn.TestnetNotReady) as err:
            tn.up_testnet(home, timeout=1.5, command=command)
    finally:
        track_started(home, manifest, procs)
    out = tn.get_node_dir(home, manifest.nodes[0]) / tn.OUT_FILE
    assert err.value.code == "testnet_not_ready"
    assert err.value.message == (
        "bank0, bank1 did not start (within 1.5s: bank0 has 0 peers, needs 1; "
        f"bank1 has 0 peers, needs 1); see {out}"
    )
    assert [path for path, _ in err.value.log_tails] == [
        tn.get_node_dir(home, node) / tn.OUT_FILE for node in manifest.nodes[:2]
    ]
    assert all(lines[0].startswith("fake node starting") for _, lines in err.value.log_tails)


def test_invalid_up_not_serving(tmp_path: Path, procs: Procs, fake_script: Path) -> None:
    home = tmp_path / "home"
    manifest = make_home(home, validators=1, observers=0)
    command = fake_command(manifest, fake_script, procs, peers=0, delay=60)
    try:
        with pytest.raises(tn.TestnetNotReady) as err:
            tn.up_testnet(home, timeout=1, command=command)
    finally:
        track_started(home, manifest, procs)
    assert err.value.message.startswith("bank0 did not start (within 1s: bank0 not serving); ")


def test_invalid_up_node_exits(tmp_path: Path, procs: Procs) -> None:
    home = tmp_path / "home"
    manifest = make_home(home, validators=1, observers=0)

    def crashing(node_dir: Path) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import sys; print('boom: bad config'); sys.exit(3)",
            str(node_dir),
        ]

    started = time.monotonic()
    try:
        with pytest.raises(tn.TestnetNotReady) as err:
            tn.up_testnet(home, timeout=30, command=crashing)
    finally:
        track_started(home, manifest, procs)
    assert time.monotonic() - started < 10  # failed early, not at the deadline
    out = tn.get_node_dir(home, manifest.nodes[0]) / tn.OUT_FILE
    # how it ended is said: a node killed before it wrote a line leaves no log to read
    assert err.value.message == f"bank0 did not start (exited: bank0: exit code 3); see {out}"
    assert err.value.log_tails == ((out, ("boom: bad config",)),)


def test_a_node_killed_at_start_is_said_to_be(tmp_path: Path, procs: Procs) -> None:
    home = tmp_path / "home"
    manifest = make_home(home, validators=1, observers=0)

    def killed(node_dir: Path) -> list[str]:
        code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        return [sys.executable, "-c", code, str(node_dir)]

    try:
        with pytest.raises(tn.TestnetNotReady) as err:
            tn.up_testnet(home, timeout=30, command=killed)
    finally:
        track_started(home, manifest, procs)
    assert "(exited: bank0: killed by SIGKILL)" in err.value.message


# ---------------------------------------------------------------------------------------
# init


def init(home: Path, **kwargs: Any) -> tn.Manifest:
    options: dict[str, Any] = {"validators": 2, "observers": 1, "base_port": find_free_base(2 * 3)}
    return tn.init_testnet(home, **(options | kwargs))


def test_init_basic(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fast = ConsensusConfig(timeout_propose_ms=200, timeout_commit_ms=10)
    manifest = init(home, chain_id="unit-net", consensus=fast, now_ms=1_234)
    genesis = load_genesis_file(home / tn.GENESIS_FILE)
    assert (manifest.chain_id, manifest.created_at) == ("unit-net", 1_234)
    assert (genesis.chain_id, genesis.genesis_time) == ("unit-net", 1_234)
    assert [n.name for n in manifest.nodes] == [b.code for b in genesis.banks]
    assert manifest.nodes[0].name == "nbc"
    assert [n.validator for n in manifest.nodes] == [True, True, False]
    assert tn.load_manifest(home) == manifest
    assert not (home / "wallet").exists()
    banks = {b.code: b for b in genesis.banks}
    tokens = set()
    for node in manifest.nodes:
        node_dir = tn.get_node_dir(home, node)
        config = load_config(node_dir / tn.CONFIG_FILE)
        assert (config.name, config.bank) == (node.name, node.bank)
        assert config.genesis_path.resolve() == (home / tn.GENESIS_FILE).resolve()
        assert (config.http.port, config.p2p.port) == (node.http_port, node.p2p_port)
        assert config.http_url == node.http_url
        others = {f"127.0.0.1:{n.p2p_port}" for n in manifest.nodes if n is not node}
        assert set(config.p2p.peers) == others
        assert config.consensus == fast
        assert read_key_file(config.node_key_path).public_key == banks[node.bank].node_key
        assert config.operator_key_path is not None
        operator = read_key_file(config.operator_key_path)
        assert operator.public_key == banks[node.bank].operator_key
        assert len(config.api_token) == 32
        tokens.add(config.api_token)
        for name in (tn.CONFIG_FILE, tn.NODE_KEY_FILE, tn.OPERATOR_KEY_FILE):
            assert stat.S_IMODE((node_dir / name).stat().st_mode) == 0o600
    assert len(tokens) == 3


def test_init_writes_wallet_through_the_callback(tmp_path: Path) -> None:
    written: dict[str, bytes] = {}

    def wallet(home: Path, keys: Mapping[AccountId, PrivateKey]) -> None:
        written.update({account: key.public_key for account, key in keys.items()})

    init(tmp_path / "home", wallet=wallet)
    genesis = load_genesis_file(tmp_path / "home" / tn.GENESIS_FILE)
    assert written == {f"admin@{b.code}": b.operator_key for b in genesis.banks}


def test_init_into_an_empty_folder(tmp_path: Path) -> None:
    manifest = init(tmp_path)
    assert tn.load_manifest(tmp_path) == manifest


def test_invalid_init_exists(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init(home)
    before = (home / tn.GENESIS_FILE).read_text()
    with pytest.raises(tn.TestnetError) as err:
        init(home)
    assert err.value.code == "testnet_exists"
    assert (home / tn.GENESIS_FILE).read_text() == before


def test_init_force_wipes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init(home)
    before = (home / tn.GENESIS_FILE).read_text()
    (home / "nodes" / "nbc" / "data").mkdir()
    (home / "nodes" / "nbc" / "data" / "leftover").write_text("old chain")
    init(home, force=True)
    assert (home / tn.GENESIS_FILE).read_text() != before
    assert not (home / "nodes" / "nbc" / "data").exists()


def test_init_force_stops_running_nodes(tmp_path: Path, procs: Procs) -> None:
    home = tmp_path / "home"
    manifest = init(home)
    node_dir = tn.get_node_dir(home, manifest.nodes[0])
    pid = spawn_sleeper(procs, node_dir, str(node_dir))
    init(home, force=True)
    assert not is_process_alive(pid)


def test_invalid_init_force_on_a_folder_that_is_not_a_testnet(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(tn.TestnetError) as err:
        init(tmp_path, force=True)
    assert err.value.code == "not_a_testnet"
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("validators, observers", [(0, 1), (2, -1)])
def test_invalid_init_counts(tmp_path: Path, validators: int, observers: int) -> None:
    with pytest.raises(tn.TestnetError) as err:
        init(tmp_path / "home", validators=validators, observers=observers)
    assert err.value.code == "invalid_argument"
    assert not (tmp_path / "home").exists()


def test_invalid_init_port_range(tmp_path: Path) -> None:
    with pytest.raises(tn.TestnetError) as err:
        init(tmp_path / "home", base_port=65532)
    assert err.value.code == "invalid_port"
    assert not (tmp_path / "home").exists()


def test_invalid_init_port_in_use(tmp_path: Path) -> None:
    base = find_free_base(2 * 3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 3))
        busy.listen()
        with pytest.raises(tn.TestnetError) as err:
            init(tmp_path / "home", base_port=base)
    assert err.value.code == "port_in_use"
    assert f"port {base + 3} " in err.value.message
    assert not (tmp_path / "home").exists()


def test_invalid_init_chain_id(tmp_path: Path) -> None:
    with pytest.raises(GenesisError) as err:
        init(tmp_path / "home", chain_id="")
    assert err.value.code == "invalid_genesis"
    assert not (tmp_path / "home").exists()


def test_pid_files_are_never_seen_empty(tmp_path: Path) -> None:
    """`testnet up` polls pid files while each starting node writes its own: a pid file
    truncated in place reads empty for a moment, which made a starting node look exited
    (and the testnet was torn down around it). Written atomically, a reader never sees
    that."""
    path = tmp_path / tn.PID_FILE
    write_pid_file(path, 1)
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for pid in range(2, 3000):
            write_pid_file(path, pid)
    finally:
        done.set()
        reader.join()
    assert seen and all(text.strip().isdigit() for text in seen)
    assert path.read_text() == "2999\n"
    assert [p.name for p in tmp_path.iterdir()] == [tn.PID_FILE]  # no temporary left
