"""`bakong testnet status` and getting started outside the demo (issue 14, items 5 and 6):
a status that fits 80 columns and shows peers, round, mempool and who is catching up;
exit 3 when some node does not serve; `--watch` in a pseudo-terminal; the missing-home
error; `testnet init` under BAKONG_PASSPHRASE."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.devnet import testnet as tn
from cli.keystore import DEV_PASSPHRASE, Keystore, KeystoreError
from cli.main import cli
from cli.testnet import EXIT_NODES_DOWN, status_table
from tests.cli.conftest import Net
from tests.cli.test_follow_cli import DEADLINE_S, ROOT, terminal
from tests.node.netutil import find_free_base

CONTRACT_KEYS = {"name", "bank", "validator", "url", "pid", "running", "height", "block_hash",
                 "state_hash"}  # fmt: skip
ADDED_KEYS = {"serving", "peers", "round", "mempool", "mempool_queued", "catching_up"}


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    base: dict[str, str | None] = {"BAKONG_HOME": None, "BAKONG_PASSPHRASE": None}
    return CliRunner().invoke(cli, list(args), env=base | (env or {}))


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A 1-validator, 1-observer testnet that was never started."""
    home = tmp_path / "testnet"
    result = invoke("testnet", "init", "--home", str(home), "--validators", "1",
                    "--observers", "1", "--base-port", str(find_free_base(4)))  # fmt: skip
    assert result.exit_code == 0, result.output
    return home


# ---------------------------------------------------------------------------------------
# status of the running testnet


def test_status_json_of_a_running_testnet(net: Net) -> None:
    result = invoke("testnet", "status", "--json", "--home", str(net.home))
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert set(status) == {"chain_id", "nodes"}
    for node in status["nodes"]:
        assert set(node) == CONTRACT_KEYS | ADDED_KEYS
        assert node["running"] and node["serving"]
        assert all(isinstance(node[k], int) for k in ("peers", "round", "mempool"))
        assert node["peers"] >= 3 and node["catching_up"] is False


def test_status_table_fits_80_columns_with_addresses(net: Net) -> None:
    result = invoke("testnet", "status", "--home", str(net.home), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    header = next(line for line in lines if " node " in line)
    for column in ("state", "height", "round", "peers", "mempool", "address"):
        assert f" {column} " in header, header
    for node in net.manifest.nodes:
        # readable in full: host:port, never `http://127.…`
        row = next(line for line in lines if f" {node.name} " in line)
        assert f"127.0.0.1:{node.http_port}" in row and "serving" in row, row
    assert lines[-1] == f"5 of 5 nodes serving, height {lines[-1].split()[-1]}"
    assert "…" not in result.stdout


def test_status_table_wide_shows_urls_roles_and_hashes(net: Net) -> None:
    result = invoke("testnet", "status", "--home", str(net.home), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for node in net.manifest.nodes:
        assert node.http_url in result.stdout
    for word in ("validator", "observer", "block hash", "state hash", "pid"):
        assert word in result.stdout


@pytest.mark.parametrize("width", [50, 60, 80, 100, 120])
def test_status_table_never_wider_than_the_console(net: Net, width: int) -> None:
    result = invoke("testnet", "status", "--home", str(net.home), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= width, result.stdout
    assert "…" not in result.stdout


# ---------------------------------------------------------------------------------------
# catching up and the exit status


def node_status(name: str, height: int | None, pid: int | None = 1) -> tn.NodeStatus:
    return tn.NodeStatus(name, name, True, f"http://127.0.0.1:{height or 9}", pid, height)


def test_catching_up_is_3_blocks_below_the_highest_other() -> None:
    nodes = [node_status("a", 100), node_status("b", 98), node_status("c", 97),
             node_status("d", None), node_status("e", None, pid=None)]  # fmt: skip
    marked = tn.mark_catching_up(nodes)
    assert [n.catching_up for n in marked] == [False, False, True, None, None]
    assert [n.state for n in marked] == [
        "serving", "serving", "catching up", "not serving", "stopped",
    ]  # fmt: skip
    # alone, or all equal: nobody is behind
    assert tn.mark_catching_up([node_status("a", 5)])[0].catching_up is False
    table = status_table(tn.TestnetStatus("c", marked), None, 80)
    state = next(column for column in table.columns if column.header == "state")
    assert sum("catching up" in str(cell) for cell in state.cells) == 1


def test_status_of_a_stopped_testnet_exits_3(stopped: Path) -> None:
    result = invoke("testnet", "status", "--json", "--home", str(stopped))
    assert result.exit_code == EXIT_NODES_DOWN == 3
    # the status is printed all the same, for scripts
    status = json.loads(result.stdout)
    assert [n["running"] for n in status["nodes"]] == [False, False]
    assert result.stderr.strip() == (
        "error: nodes_down: 2 of 2 nodes do not serve: nbc (stopped), aclb (stopped)"
    )
    table = invoke("testnet", "status", "--home", str(stopped))
    assert table.exit_code == 3 and "stopped" in table.stdout
    assert "0 of 2 nodes serving, height -" in table.stdout


def test_status_exits_3_from_the_real_entry_point(stopped: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "testnet", "status", "--home", str(stopped)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.strip().startswith("error: nodes_down: ")
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------
# --watch


def last_frame_rows(text: str, chain_id: str) -> dict[str, dict[str, str]] | None:
    """The rows of the last complete frame of `status --watch` (node -> column -> cell)."""
    frames = [f for f in text.split(f"testnet {chain_id}  ")[1:] if "nodes serving" in f]
    if not frames:
        return None
    lines = [line for line in re.split(r"\r\n|\r|\n", frames[-1]) if line.startswith(("┃", "│"))]
    headers = [cell.strip() for cell in lines[0].strip("┃").split("┃")]
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines[1:]]
    return {row[0]: dict(zip(headers, row, strict=True)) for row in rows}


def test_watch_refreshes_in_a_terminal_until_ctrl_c(net: Net) -> None:
    chain = net.manifest.chain_id
    with terminal(net.home, "testnet", "status", "--watch", "--interval", "0.3") as term:
        term.wait_until(lambda text: last_frame_rows(text, chain), "a first frame")
        assert "Ctrl-C to stop" in term.text
        first = last_frame_rows(term.text, chain)
        assert first is not None and set(first) == {n.name for n in net.manifest.nodes}
        assert {"height", "round", "peers", "mempool", "state"} <= set(first["nbc"])
        sent = net.ok_json("issue", "--to", "admin@aclb", "--asset", "KHR", "--amount", "3")
        assert sent["status"] == "committed"

        def shows_the_new_height(text: str) -> bool:
            rows = last_frame_rows(text, chain)
            return rows is not None and int(rows["nbc"]["height"]) >= sent["height"]

        term.wait_until(shows_the_new_height, f"height {sent['height']} on screen")
        term.assert_fits()
        assert term.interrupt() == 0
    assert "Traceback" not in term.text and "error:" not in term.text


def test_watch_json_prints_a_line_per_refresh(net: Net) -> None:
    command = [sys.executable, "-m", "cli.main", "testnet", "status", "--watch", "--json",
               "--interval", "0.2", "--home", str(net.home)]  # fmt: skip
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:  # fmt: skip
        try:
            assert child.stdout is not None
            lines = [child.stdout.readline() for _ in range(2)]
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=DEADLINE_S)
        finally:
            child.kill()
    assert child.returncode == 0 and "Traceback" not in err, err
    assert all(set(json.loads(line)) == {"chain_id", "nodes"} for line in lines)


def test_watch_of_a_stopped_testnet_keeps_watching(stopped: Path) -> None:
    with terminal(stopped, "testnet", "status", "--watch", "--interval", "0.2") as term:
        term.wait_until(lambda text: "0 of 2 nodes serving" in text, "a frame")
        term.assert_fits()
        assert term.interrupt() == 0


# ---------------------------------------------------------------------------------------
# getting started outside the demo


def test_missing_home_names_the_absolute_path_and_the_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BAKONG_HOME"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "testnet", "status"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: testnet_not_found: no testnet in {tmp_path / 'testnet'}:")
    assert "--home" in line and "BAKONG_HOME" in line and "bakong testnet init" in line


def test_readme_tour_starts_by_activating_the_venv() -> None:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A tour", 1)[1]
    commands = [line for line in tour.splitlines() if line.startswith("bakong ")]
    assert "source .venv/bin/activate" in tour.split(commands[0])[0]
    demo = (ROOT / "scripts" / "demo").read_text()
    assert "source .venv/bin/activate" in demo.rsplit('step "done"', 1)[1]


@pytest.fixture
def own_passphrase_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running 1-validator testnet made by `testnet init` with BAKONG_PASSPHRASE set."""
    home = tmp_path_factory.mktemp("own-passphrase") / "testnet"
    env = {"BAKONG_PASSPHRASE": "correct horse battery staple"}
    result = invoke("testnet", "init", "--home", str(home), "--validators", "1",
                    "--observers", "0", "--base-port", str(find_free_base(2)), env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "BAKONG_PASSPHRASE" in result.stdout
    try:
        up = invoke("testnet", "up", "--home", str(home), "--timeout", "90")
        assert up.exit_code == 0, up.output
        yield home
    finally:
        tn.down_testnet(home)


def test_init_honours_bakong_passphrase(own_passphrase_net: Path) -> None:
    home = own_passphrase_net
    keystore = Keystore(home)
    assert not keystore.uses_dev_passphrase()
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        keystore.load("admin@nbc", DEV_PASSPHRASE)
    env = {"BAKONG_HOME": str(home), "BAKONG_PASSPHRASE": "correct horse battery staple"}
    result = invoke("issue", "--to", "admin@nbc", "--asset", "KHR", "--amount", "5", "--json",
                    env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "committed"
    # without the variable nobody knows the passphrase: asked for, and none typed
    result = invoke("issue", "--to", "admin@nbc", "--asset", "KHR", "--amount", "5",
                    env={"BAKONG_HOME": str(home)})  # fmt: skip
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: no_passphrase: ")


def test_dev_home_works_with_and_without_bakong_passphrase(net: Net) -> None:
    """A home made without the variable keeps the development passphrase; exporting
    BAKONG_PASSPHRASE later (for your own keys) does not lock its keys."""
    assert Keystore(net.home).uses_dev_passphrase()
    args = ("transfer", "--from", "admin@aba", "--to", "admin@wing", "--asset", "KHR",
            "--amount", "1", "--json")  # fmt: skip
    assert json.loads(net.ok(*args))["status"] == "committed"
    result = CliRunner().invoke(cli, list(args), env=net.env | {"BAKONG_PASSPHRASE": "mine"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "committed"
