"""`bakong assets`, `bakong accounts`, `bakong logs` and `bakong completion` on the shared
testnet, and `GET /v1/accounts` on its real nodes."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from cli.devnet import testnet as tn
from tests.cli.conftest import Net
from tests.node.netutil import find_free_base, http, wait_for

BAKONG = str(Path(sys.executable).parent / "bakong")


# ---------------------------------------------------------------------------------------
# assets


def test_assets_json(net: Net) -> None:
    assert net.ok_json("assets") == [
        {"code": "KHR", "decimals": 0},
        {"code": "USD", "decimals": 2},
    ]


def test_assets_table(net: Net) -> None:
    out = net.ok("assets")
    assert re.search(r"KHR\s.*\s0\s.*1 KHR", out) and re.search(r"USD\s.*\s2\s.*0\.01 USD", out)


def test_assets_node_down(net: Net) -> None:
    net.fails("node_unreachable", "assets", "--node", "http://127.0.0.1:9")


# ---------------------------------------------------------------------------------------
# accounts


def make_accounts(net: Net, bank: str, count: int) -> tuple[str, list[str]]:
    """`count` new accounts at `bank` whose ids sort together right after the returned
    cursor (`_` sorts after `@`, and every other id of the run differs in its stem)."""
    stem = f"ls{random.randrange(10**8):08d}"
    made = [f"{stem}_{i}@{bank}" for i in range(count)]
    for account in made:
        assert net.ok_json("account", "create", account, "--no-key")["status"] == "committed"
    return f"{stem}@{bank}", made


def test_accounts_of_a_bank_with_balances_and_paging(net: Net) -> None:
    cursor, made = make_accounts(net, "aba", 3)
    net.fund(made[0], "KHR", "1500")
    net.fund(made[1], "USD", "12.50")
    net.ok_json("freeze", made[2])
    out = net.ok_json("accounts", "--bank", "aba", "--after", cursor, "--limit", "3")
    assert set(out) == {"accounts", "next"}
    assert [a["account"] for a in out["accounts"]] == made
    first, second, third = out["accounts"]
    assert first == {
        "account": made[0],
        "role": "customer",
        "frozen": False,
        "balances": {"KHR": "1500", "USD": "0.00"},
    }
    assert second["balances"] == {"KHR": "0", "USD": "12.50"}
    assert third["frozen"] is True
    # two at a time: the cursor of the first page starts the second
    page = net.ok_json("accounts", "--bank", "aba", "--after", cursor, "--limit", "2")
    assert [a["account"] for a in page["accounts"]] == made[:2] and page["next"] == made[1]
    rest = net.ok_json("accounts", "--bank", "aba", "--after", page["next"], "--limit", "1")
    assert [a["account"] for a in rest["accounts"]] == made[2:]


def test_accounts_bank_filter_and_all(net: Net) -> None:
    cursor, made = make_accounts(net, "wing", 1)
    # another bank's listing skips it, the whole listing has it
    aba = net.ok_json("accounts", "--bank", "aba", "--limit", "100000")
    assert aba["next"] is None and aba["accounts"]
    assert all(a["account"].endswith("@aba") for a in aba["accounts"])
    assert made[0] not in {a["account"] for a in aba["accounts"]}
    everything = net.ok_json("accounts", "--after", cursor, "--limit", "1")
    assert [a["account"] for a in everything["accounts"]] == made
    # the settlement accounts of every bank are there, in id order
    ids = [a["account"] for a in net.ok_json("accounts", "--limit", "100000")["accounts"]]
    assert ids == sorted(ids) and {"admin@nbc", "admin@aba", "admin@wing"} <= set(ids)


def test_accounts_table(net: Net) -> None:
    cursor, made = make_accounts(net, "aclb", 2)
    net.fund(made[0], "KHR", "1234567")
    out = net.ok("accounts", "--bank", "aclb", "--after", cursor, "--limit", "1")
    assert made[0] in out and "1,234,567" in out and "customer" in out and "active" in out
    assert made[1] not in out
    assert f"more: bakong accounts --bank aclb --after {made[0]}" in out
    empty = net.ok("accounts", "--bank", "aclb", "--after", "zzzzzzzz@aclb")
    assert "no accounts at bank aclb" in empty and "more:" not in empty


def test_accounts_errors(net: Net) -> None:
    net.fails("unknown_bank", "accounts", "--bank", "nosuch")
    net.fails("invalid_id", "accounts", "--bank", "Not-A-Bank")
    net.fails("invalid_id", "accounts", "--after", "nobody")
    result = net.run("accounts", "--limit", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------
# GET /v1/accounts on a real node (the route is served by every node)


def api(net: Net, query: str, node: str = "aba") -> tuple[int, Any]:
    return http(f"{net.url(node)}/v1/accounts{query}")


def test_api_accounts_paging(net: Net) -> None:
    cursor, made = make_accounts(net, "aba", 3)
    code, body = api(net, f"?bank=aba&after={cursor}&limit=2")
    assert code == 200 and set(body) == {"accounts", "next"}
    assert [a["account"] for a in body["accounts"]] == made[:2] and body["next"] == made[1]
    code, body = api(net, f"?bank=aba&after={body['next']}&limit=1", node="nbc")
    assert code == 200 and [a["account"] for a in body["accounts"]] == made[2:]
    code, body = api(net, "")
    assert code == 200 and 0 < len(body["accounts"]) <= 100


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten", "1.5"])
def test_api_accounts_bad_limit(net: Net, limit: str) -> None:
    code, body = api(net, f"?limit={limit}")
    assert code == 400 and body["error"]["code"] == "bad_parameter", body


def test_api_accounts_unknown_bank_and_bad_cursor(net: Net) -> None:
    code, body = api(net, "?bank=nosuch")
    assert code == 404 and body["error"]["code"] == "unknown_bank"
    assert "nosuch" in body["error"]["message"]
    code, body = api(net, "?after=not-an-account")
    assert code == 400 and body["error"]["code"] == "bad_parameter"


# ---------------------------------------------------------------------------------------
# logs


def node_log(net: Net, name: str, file: str = tn.LOG_FILE) -> Path:
    node = next(n for n in net.manifest.nodes if n.name == name)
    return tn.get_node_dir(net.home, node) / file


def test_logs_prints_the_last_lines(net: Net) -> None:
    out = net.ok("logs", "nbc", "-n", "3")
    lines = out.splitlines()
    assert len(lines) == 3
    logged = node_log(net, "nbc").read_text().splitlines()
    assert all(line in logged for line in lines)
    assert "bakong." in out  # the node's own events: "... INFO bakong.engine: ..."
    assert net.ok("logs", "nbc", "-n", "0") == ""
    many = net.ok("logs", "wing", "--lines", "100000").splitlines()
    assert many[0] == node_log(net, "wing").read_text().splitlines()[0]


def test_logs_of_the_process_output(net: Net) -> None:
    out_file = node_log(net, "aba", tn.OUT_FILE)
    expected = out_file.read_text().splitlines()[-5:]
    assert net.ok("logs", "aba", "--out", "-n", "5").splitlines() == expected


def test_logs_unknown_node(net: Net) -> None:
    last = net.fails("unknown_node", "logs", "nosuch")
    assert "nosuch" in last and all(n.name in last for n in net.manifest.nodes)


def test_logs_without_a_testnet(tmp_path: Path) -> None:
    result = subprocess.run(
        [BAKONG, "logs", "nbc", "--home", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: testnet_not_found: ")


def test_logs_of_a_node_never_started(tmp_path: Path) -> None:
    home = tmp_path / "testnet"
    tn.init_testnet(home, validators=1, observers=0, base_port=find_free_base(2))
    result = subprocess.run(
        [BAKONG, "logs", "nbc", "--home", str(home)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: no_log: node nbc has no node.log yet")
    assert "bakong testnet up" in result.stderr and len(result.stderr.splitlines()) == 1


def test_logs_follow_until_ctrl_c(net: Net) -> None:
    env = os.environ | {"BAKONG_HOME": str(net.home)}
    env.pop("BAKONG_NODE", None)
    proc = subprocess.Popen(
        [BAKONG, "logs", "nbc", "-f", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    seen: list[bytes] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: seen.extend(iter(stdout.readline, b"")))
    reader.start()
    try:
        # the follower runs once it printed the log's last line (starting takes a while
        # on a busy machine: a fixed sleep was not enough)
        wait_for(lambda: bool(seen), 60, "the follower printing the log's last line")
        sent = net.ok_json("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "1")
        block = f"committed block {sent['height']} ".encode()
        wait_for(lambda: any(block in line for line in seen), 30, "the new block in the log")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        reader.join(timeout=5)
    assert proc.returncode == 0, err
    assert err == b""


def test_logs_into_a_closed_pipe(net: Net) -> None:
    env = os.environ | {"BAKONG_HOME": str(net.home)}
    shell = f"'{BAKONG}' logs nbc -n 100000 | head -n 1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], capture_output=True, env=env, timeout=60
    )
    assert len(result.stdout.splitlines()) == 1
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr


# ---------------------------------------------------------------------------------------
# completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(net: Net, shell: str) -> None:
    out = net.ok("completion", shell)
    assert "_BAKONG_COMPLETE" in out and f"{shell}_complete" in out


def test_completion_bash_script_is_valid_bash(net: Net) -> None:
    script = net.ok("completion", "bash")
    result = subprocess.run(
        ["bash", "-c", script + "\ncomplete -p bakong"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "_bakong_completion" in result.stdout


def test_completion_completes_commands() -> None:
    """What the installed script asks `bakong` for on Tab."""
    env = os.environ | {
        "_BAKONG_COMPLETE": "bash_complete",
        "COMP_WORDS": "bakong validator ",
        "COMP_CWORD": "2",
    }
    result = subprocess.run([BAKONG], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "plain,add" in result.stdout.splitlines()
    assert "plain,remove" in result.stdout.splitlines()
    env |= {"COMP_WORDS": "bakong acc", "COMP_CWORD": "1"}
    words = subprocess.run([BAKONG], capture_output=True, text=True, env=env, timeout=60)
    assert set(words.stdout.split()) == {"plain,account", "plain,accounts"}


def test_completion_unknown_shell(net: Net) -> None:
    result = subprocess.run([BAKONG, "completion", "tcsh"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: usage: ") and "tcsh" in result.stderr
    help_text = net.ok("completion", "--help")
    assert "~/.bashrc" in help_text and "fish/completions" in help_text
