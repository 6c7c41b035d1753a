"""The CLI as a newcomer meets it (issue 14): rejections that name the culprit, Ctrl-C
that says what became of the tx, help for a bare command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.devnet import testnet as tn
from cli.testnet import write_wallet
from tests.cli.conftest import FAST, Net
from tests.node.netutil import http, init_on_free_ports, wait_for

ROOT = Path(__file__).resolve().parents[2]


def bakong(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BAKONG_PASSPHRASE": "", **(env or {})},
    )


# Rejections at execution name the culprit.
def test_invalid_insufficient_funds_says_how_much(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "1000")
    line = net.fails("insufficient_funds", "transfer", "--from", payer, "--to", "admin@wing",
                     "--asset", "KHR", "--amount", "100000")  # fmt: skip
    assert f"{payer} holds 1,000 KHR, needs 100,000 KHR" in line, line


def test_invalid_unknown_payee_is_named(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "USD", "5.00")
    ghost = net.new_account_name("wing", "ghost")
    line = net.fails("unknown_account", "transfer", "--from", payer, "--to", ghost,
                     "--asset", "USD", "--amount", "1")  # fmt: skip
    assert ghost in line, line
    # the node keeps the details: the API (and `tx status`) answer them
    tx_hash = line.split(" tx ")[1].split()[0]
    code, status = http(f"{net.validator_urls[0]}/v1/transactions/{tx_hash}")
    assert code == 200 and status["status"] == "rejected", status
    assert status["error"] == "unknown_account" and ghost in status["message"]


def test_invalid_transfer_to_itself_says_so(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "10")
    line = net.fails("invalid_command", "transfer", "--from", payer, "--to", payer,
                     "--asset", "KHR", "--amount", "1")  # fmt: skip
    assert f"a transfer from {payer} to itself" in line, line


def test_invalid_usd_shortfall_in_dollars(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "USD", "1.50")
    line = net.fails("insufficient_funds", "transfer", "--from", payer, "--to", "admin@wing",
                     "--asset", "USD", "--amount", "1234.5")  # fmt: skip
    assert "holds 1.50 USD, needs 1,234.50 USD" in line, line


# A bare command shows its help.
@pytest.mark.parametrize("args", [(), ("tx",), ("testnet",), ("openapi",)])
def test_bare_command_prints_help(args: tuple[str, ...]) -> None:
    proc = bakong(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("Usage: bakong") and "Commands:" in out and err == ""


# Ctrl-C while a transfer waits.
@pytest.fixture(scope="module")
def stalled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A 2-validator testnet with one validator stopped: nothing commits."""
    home = tmp_path_factory.mktemp("stalled") / "testnet"
    manifest = init_on_free_ports(
        home, validators=2, observers=0, consensus=FAST, wallet=write_wallet
    )
    try:
        tn.up_testnet(home, timeout=90)
        second = manifest.nodes[1]
        pid = tn.get_node_pid(tn.get_node_dir(home, second))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        yield home, manifest.nodes[0].http_url
    finally:
        tn.down_testnet(home)


def test_interrupted_wait_prints_the_full_hash(stalled: tuple[Path, str]) -> None:
    home, url = stalled
    before = http(f"{url}/v1/status")[1]["mempool"]
    # a wait far longer than the test's own deadlines: it is Ctrl-C that ends it
    proc = bakong("transfer", "--from", "admin@aclb", "--to", "admin@nbc", "--asset", "KHR",
                  "--amount", "1", "--home", str(home), "--node", url,
                  "--timeout", "600")  # fmt: skip
    try:
        wait_for(lambda: http(f"{url}/v1/status")[1]["mempool"] > before, 60, "the tx pending")
    except AssertionError:
        proc.kill()
        raise
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted: stopped waiting; tx "), err
    assert "Traceback" not in err
    tx_hash = last.split("tx ")[1].split()[0]
    assert len(tx_hash) == 64 and f"bakong tx status {tx_hash}" in last
    code, status = http(f"{url}/v1/transactions/{tx_hash}")
    assert code == 200 and status["status"] == "pending"


def test_lone_rejection_is_listed_at_its_height(net: Net) -> None:
    """A lone tx that fails at execution leaves an empty block behind (the chain had
    started the height for it); that block says why: its "rejected" list on every
    validator. The observer follows (`trust_commits`): it takes no gossip, so it lists
    only the rejections of txs its own clients sent it."""
    payer = net.new_customer("aba")
    line = net.fails("insufficient_funds", "transfer", "--from", payer, "--to", "admin@wing",
                     "--asset", "KHR", "--amount", "5")  # fmt: skip
    tx_hash = line.split(" tx ")[1].split()[0]
    url = net.validator_urls[0]

    def listed() -> dict[str, Any] | None:
        tip = http(f"{url}/v1/status")[1]["height"]
        for height in range(tip, max(0, tip - 5), -1):
            block = http(f"{url}/v1/blocks/{height}")[1]
            for entry in block.get("rejected", []):
                if entry["hash"] == tx_hash:
                    return dict(block)
        return None

    block = wait_for(listed, 30, "the rejection listed at its height")
    [entry] = [e for e in block["rejected"] if e["hash"] == tx_hash]
    assert entry["error"] == "insufficient_funds" and payer in entry["message"]
    assert tx_hash not in [tx["hash"] for tx in block["txs"]]
    # every validator, proposer or not, lists it at the same height
    for other in [n for n in net.manifest.nodes if n.validator]:

        def seen(node_url: str = other.http_url) -> bool:
            found = http(f"{node_url}/v1/blocks/{block['height']}")[1]
            return any(e["hash"] == tx_hash for e in found.get("rejected", []))

        wait_for(seen, 30, f"the rejection listed on {other.name}")


# Item 3: hashes as people type them (the API side; the CLI passes them through).
def test_hash_prefixes(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "10")
    sent = net.ok_json("transfer", "--from", payer, "--to", "admin@wing", "--asset", "KHR",
                       "--amount", "1")  # fmt: skip
    full = sent["hash"]
    for prefix in (full[:8], full[:16].upper(), full[:63]):
        assert net.ok_json("tx", "status", prefix)["hash"] == full
    block = http(f"{net.validator_urls[0]}/v1/blocks/{sent['height']}")[1]
    found = http(f"{net.validator_urls[0]}/v1/blocks/{block['hash'][:12]}")[1]
    assert found["height"] == sent["height"]
    net.fails(
        "not_found", "tx", "status", "0123abcd" if not full.startswith("0123abcd") else "fedc9876"
    )
    net.fails("bad_hash", "tx", "status", full[:7])


def test_ambiguous_prefix_lists_the_matches() -> None:
    from node.api import ApiError, _resolve_prefix

    one, two = bytes.fromhex("ab" * 32), bytes.fromhex("abababab" + "cd" * 28)
    with pytest.raises(ApiError) as caught:
        _resolve_prefix("abababab", lambda prefix, limit: [one, two], "transaction")
    assert (caught.value.status, caught.value.code) == (409, "ambiguous_hash")
    assert one.hex() in caught.value.message and two.hex() in caught.value.message
    assert _resolve_prefix("abababab", lambda prefix, limit: [one], "transaction") == one


# Item 7: values for people.
def test_human_values(net: Net) -> None:
    rich = net.new_customer("aba")
    net.fund(rich, "KHR", "1234567")
    assert "1,234,567" in net.ok("balance", rich)
    code = net.ok_json("khqr", "new", "admin@wing", "--amount", "15000")
    shown = net.ok("khqr", "decode", code["qr"])
    assert "dynamic" in shown and "yes (pays once" in shown and "True" not in shown
    assert "15,000 KHR" in shown
    expiry = next(line for line in shown.splitlines() if line.startswith("expires_ms"))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d$", expiry), expiry


# Item 11.
def test_pay_prints_a_receipt(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "20000")
    code = net.ok_json("khqr", "new", merchant, "--amount", "12000", "--name", "Noodle Bar",
                       "--bill-number", "INV-9")  # fmt: skip
    out = net.ok("pay", code["qr"], "--from", payer)
    assert "receipt" in out and "paid    12,000 KHR" in out
    assert f"to      {merchant} (Noodle Bar, Phnom Penh)" in out
    assert f"md5 {code['md5']}" in out and "bill    INV-9" in out
    assert re.search(r"tx      [0-9a-f]{64}", out) and re.search(r"height  \d+", out)


def test_khqr_new_warns_of_an_unknown_account(net: Net) -> None:
    ghost = net.new_account_name("wing", "ghost")
    result = net.run("khqr", "new", ghost, "--amount", "100")
    assert result.exit_code == 0
    assert f"warning: {ghost} does not exist" in result.stderr
    known = net.run("khqr", "new", "admin@wing", "--amount", "100")
    assert known.exit_code == 0 and "warning" not in known.stderr


def test_invalid_small_things(net: Net) -> None:
    line = net.fails("bad_duration", "khqr", "new", "admin@wing", "--expires-in", "0s")
    assert "more than zero" in line
    line = net.fails("malformed", "tx", "send", "deadbeef")
    assert "max_map_len" not in line and "msgpack" in line
    line = net.fails("invalid_amount", "fx", "set", "USD", "KHR", "-4100", "--operator", "aba")
    assert "positive" in line


def test_account_ids_any_case(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "50")
    shouted = payer.upper()
    assert net.ok_json("balance", shouted)["account"] == payer
    sent = net.ok_json("transfer", "--from", shouted, "--to", "ADMIN@Wing", "--asset", "khr",
                       "--amount", "5")  # fmt: skip
    assert sent["status"] == "committed" and net.balance(payer, "KHR") == "45"


# Item 10: a network that does not answer.
def test_invalid_all_nodes_down_is_one_line_with_a_hint(stalled: tuple[Path, str]) -> None:
    home, _ = stalled
    proc = bakong("balance", "admin@nbc", "--home", str(home), "--node", "http://127.0.0.1:1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: node_unreachable: no node answers (1 tried: 127.0.0.1:1: ")
    assert "connection refused" in err and "Errno" not in err and "--node" in err


# Item 1: the merchant flow's human output.
def test_tx_find_by_md5_reads_without_json(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "30000")
    code = net.ok_json("khqr", "new", merchant, "--amount", "15000")
    paid = net.ok_json("pay", code["qr"], "--from", payer)
    out = net.ok("tx", "find", "--md5", code["md5"])
    assert paid["hash"] in out and f"{payer} -> {merchant}" in out
    assert "15,000 KHR" in out and f"khqr {code['md5']}" in out


# Item 3, the CLI side: the prefixes the tables show are accepted.
def test_explorer_takes_the_prefixes_it_shows(net: Net) -> None:
    payer = net.new_customer("aba")
    net.fund(payer, "KHR", "10")
    sent = net.ok_json("transfer", "--from", payer, "--to", "admin@wing", "--asset", "KHR",
                       "--amount", "2")  # fmt: skip
    shown = net.ok_json("explorer", "tx", sent["hash"][:16])
    assert shown["hash"] == sent["hash"] and shown["signer"] == payer
    block = net.ok_json("explorer", "block", str(sent["height"]))
    assert net.ok_json("explorer", "block", block["hash"][:16])["height"] == sent["height"]
    net.fails("invalid_argument", "explorer", "block", "xyz")


# Item 10: the bench says what is wrong in words, not in aiohttp's.
def test_invalid_bench_against_stopped_nodes(stalled: tuple[Path, str]) -> None:
    home, _ = stalled
    proc = bakong("bench", "--home", str(home), "--duration", "1", "--node",
                  "http://127.0.0.1:1")  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: node_unreachable: "), err
    assert "ClientConnectorError" not in err and "ssl:default" not in err and "Traceback" not in err
