"""`bakong testnet` and `bakong node run` through click's runner (no real node needed)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.devnet import testnet as tn
from cli.devnet.processes import get_cmdline
from cli.keystore import DEV_PASSPHRASE, Keystore
from cli.main import cli
from node.config import load_config
from node.keyfile import read_key_file

STATUS_KEYS = {
    "name",
    "bank",
    "validator",
    "url",
    "pid",
    "running",
    "height",
    "block_hash",
    "state_hash",
}


def free_base(count: int) -> int:
    for _ in range(50):
        base = random.randrange(20000, 60000, 2)
        try:
            tn.check_ports_free(range(base, base + 2 * count))
        except tn.TestnetError:
            continue
        return base
    raise RuntimeError("no free port range")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"BAKONG_HOME": None})


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def nodes_down(result: Result) -> str:
    """`testnet status` when some node does not serve: the status on stdout, exit 3 and
    one line `error: nodes_down: ...` on stderr."""
    assert result.exit_code == 3, result.output
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: nodes_down: ")
    return result.stdout


def fails(result: Result, code: str) -> str:
    """The contract: non-zero exit, and the last stderr line is `error: <code>: <message>`."""
    assert result.exit_code != 0, result.output
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"error: {code}: "), result.stderr
    assert "Traceback" not in result.output
    return last


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "testnet"


@pytest.fixture
def small(home: Path) -> Path:
    """A 2-validator, 1-observer testnet on free ports."""
    ok(
        run(
            "testnet",
            "init",
            "--home",
            str(home),
            "--validators",
            "2",
            "--observers",
            "1",
            "--base-port",
            str(free_base(3)),
        )
    )
    return home


def test_init_basic(small: Path) -> None:
    manifest = tn.load_manifest(small)
    assert manifest.chain_id == tn.DEFAULT_CHAIN_ID
    assert [(n.name, n.validator) for n in manifest.nodes] == [
        ("nbc", True),
        ("aclb", True),
        ("aba", False),
    ]
    keystore = Keystore(small)
    assert keystore.uses_dev_passphrase()
    assert [account for account, _ in keystore.list()] == ["admin@aba", "admin@aclb", "admin@nbc"]
    for node in manifest.nodes:
        operator = read_key_file(tn.get_node_dir(small, node) / tn.OPERATOR_KEY_FILE)
        assert keystore.load(f"admin@{node.bank}", DEV_PASSPHRASE) == operator


def test_init_output_and_env_home(tmp_path: Path) -> None:
    home = tmp_path / "from-env"
    result = CliRunner().invoke(
        cli,
        [
            "testnet",
            "init",
            "--validators",
            "1",
            "--observers",
            "0",
            "--base-port",
            str(free_base(1)),
            "--chain-id",
            "env-net",
        ],
        env={"BAKONG_HOME": str(home)},
    )
    assert "created testnet env-net" in ok(result)
    assert tn.load_manifest(home).chain_id == "env-net"


def test_invalid_init_exists(small: Path) -> None:
    fails(run("testnet", "init", "--home", str(small)), "testnet_exists")


def test_init_force(small: Path) -> None:
    before = (small / tn.GENESIS_FILE).read_text()
    base = str(tn.load_manifest(small).base_port)
    ok(
        run(
            "testnet",
            "init",
            "--home",
            str(small),
            "--force",
            "--validators",
            "1",
            "--observers",
            "0",
            "--base-port",
            base,
        )
    )
    assert (small / tn.GENESIS_FILE).read_text() != before
    assert [n.name for n in tn.load_manifest(small).nodes] == ["nbc"]
    assert [account for account, _ in Keystore(small).list()] == ["admin@nbc"]


def test_invalid_init_validators(home: Path) -> None:
    fails(run("testnet", "init", "--home", str(home), "--validators", "0"), "invalid_argument")


def test_invalid_init_port(home: Path) -> None:
    fails(run("testnet", "init", "--home", str(home), "--base-port", "70000"), "invalid_port")


def test_status_json_of_stopped_testnet(small: Path) -> None:
    status = json.loads(nodes_down(run("testnet", "status", "--json", "--home", str(small))))
    assert set(status) == {"chain_id", "nodes"}
    assert status["chain_id"] == tn.DEFAULT_CHAIN_ID
    assert [n["name"] for n in status["nodes"]] == ["nbc", "aclb", "aba"]
    for node in status["nodes"]:
        assert set(node) >= STATUS_KEYS
        assert node["running"] is False
        assert [node[k] for k in ("pid", "height", "block_hash", "state_hash")] == [None] * 4


def test_status_table(small: Path) -> None:
    out = nodes_down(run("testnet", "status", "--home", str(small)))
    assert all(name in out for name in ("nbc", "aclb", "aba", "stopped"))


def test_invalid_status_no_testnet(home: Path) -> None:
    fails(run("testnet", "status", "--json", "--home", str(home)), "testnet_not_found")


def test_down_of_stopped_testnet(small: Path) -> None:
    out = ok(run("testnet", "down", "--home", str(small)))
    assert out.splitlines() == ["nbc: not running", "aclb: not running", "aba: not running"]


def wait_exec(pid: int) -> int:
    """Popen returns once exec has begun, but the kernel shows the new command line a
    moment later; tests that check ownership right away wait for it."""
    deadline = time.monotonic() + 10
    while get_cmdline(pid) is None:
        assert time.monotonic() < deadline, "child never showed its command line"
        time.sleep(0.005)
    return pid


@pytest.fixture
def sleeper(small: Path) -> Iterator[tuple[Path, int]]:
    """A process posing as the nbc node: its command line names the node folder."""
    node_dir = (small / "nodes" / "nbc").resolve()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(node_dir)],
        stdin=subprocess.DEVNULL,
    )
    (node_dir / tn.PID_FILE).write_text(str(child.pid))
    wait_exec(child.pid)
    try:
        yield node_dir, child.pid
    finally:
        child.kill()
        child.wait()


def test_down_stops_a_running_node(small: Path, sleeper: tuple[Path, int]) -> None:
    node_dir, pid = sleeper
    status = json.loads(nodes_down(run("testnet", "status", "--json", "--home", str(small))))
    assert (status["nodes"][0]["pid"], status["nodes"][0]["running"]) == (pid, True)
    out = ok(run("testnet", "down", "--home", str(small)))
    assert out.splitlines()[0] == f"nbc: stopped (pid {pid})"
    assert not (node_dir / tn.PID_FILE).exists()


def test_invalid_up_prints_log_tails(
    small: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "node.out"

    def not_ready(home: Path, **kwargs: object) -> tn.TestnetStatus:
        raise tn.TestnetNotReady(f"nbc did not start (exited); see {log}", [(log, ["boom"])])

    monkeypatch.setattr(tn, "up_testnet", not_ready)
    result = run("testnet", "up", "--home", str(small), "--timeout", "1")
    last = fails(result, "testnet_not_ready")
    assert last == f"error: testnet_not_ready: nbc did not start (exited); see {log}"
    assert f"--- last lines of {log}\n    boom\n" in result.stderr


def test_invalid_node_run_no_config(tmp_path: Path) -> None:
    fails(run("node", "run", "--home", str(tmp_path)), "config_not_found")


def test_invalid_node_run_on_a_testnet_home(small: Path) -> None:
    last = fails(run("node", "run", "--home", str(small)), "config_not_found")
    assert str(small / tn.NODES_DIR) in last


def test_invalid_node_run_already_running(sleeper: tuple[Path, int]) -> None:
    node_dir, pid = sleeper
    last = fails(run("node", "run", "--home", str(node_dir)), "node_running")
    assert str(pid) in last
    assert (node_dir / tn.PID_FILE).read_text() == str(pid)


def test_error_is_one_line_from_the_real_entry_point(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "testnet", "status", "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: testnet_not_found: no testnet in {home}: pass --home DIR (or set BAKONG_HOME)"
        f" to use another, or create one there with `bakong testnet init --home {home}`"
    ]


def fake_node_main(monkeypatch: pytest.MonkeyPatch, run_node: Callable[[Path], None]) -> None:
    """Stand in for the lead's node.main so `node run` is tested on its own."""
    module = types.ModuleType("node.main")
    module.run_node = run_node  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "node.main", module)


def test_node_run_basic(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node_dir = small / "nodes" / "aclb"
    seen: list[tuple[Path, str]] = []

    def run_node(config_path: Path) -> None:
        seen.append((config_path, (node_dir / tn.PID_FILE).read_text().strip()))

    fake_node_main(monkeypatch, run_node)
    ok(run("node", "run", "--home", str(node_dir)))
    assert seen == [(node_dir / tn.CONFIG_FILE, str(os.getpid()))]
    assert not (node_dir / tn.PID_FILE).exists()


def test_invalid_node_run_bad_config(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node_dir = small / "nodes" / "aclb"

    def run_node(config_path: Path) -> None:
        load_config(config_path)

    (node_dir / tn.CONFIG_FILE).write_text('name = "aclb"\nbank = "aclb"\ncolour = "red"\n')
    fake_node_main(monkeypatch, run_node)
    last = fails(run("node", "run", "--home", str(node_dir)), "bad_config")
    assert "colour" in last
    assert not (node_dir / tn.PID_FILE).exists()


@pytest.mark.slow
def test_real_nodes_up_status_down(home: Path) -> None:
    """Smoke test with the real node: the manager and `node run` agree on the contract."""
    ok(
        run(
            "testnet",
            "init",
            "--home",
            str(home),
            "--validators",
            "2",
            "--observers",
            "1",
            "--base-port",
            str(free_base(3)),
        )
    )
    try:
        ok(run("testnet", "up", "--home", str(home), "--timeout", "60"))
        status = json.loads(ok(run("testnet", "status", "--json", "--home", str(home))))
        assert all(n["running"] and n["height"] == 0 for n in status["nodes"])
        assert len({(n["block_hash"], n["state_hash"]) for n in status["nodes"]}) == 1
        ok(run("testnet", "up", "--home", str(home), "--timeout", "60"))
        again = json.loads(ok(run("testnet", "status", "--json", "--home", str(home))))
        assert [n["pid"] for n in again["nodes"]] == [n["pid"] for n in status["nodes"]]
    finally:
        down = ok(run("testnet", "down", "--home", str(home), "--timeout", "5"))
    assert [line.split(":")[0] for line in down.splitlines()] == ["nbc", "aclb", "aba"]
    assert not any(
        n["running"]
        for n in json.loads(nodes_down(run("testnet", "status", "--json", "--home", str(home))))[
            "nodes"
        ]
    )
