"""`bakong explorer follow` and the explorer's output for people (issue 14, items 6, 7
and 9): a header and a Ctrl-C hint at start, "waiting for height N" beyond the tip,
sentences for empty results, a `more:` hint only when a page follows, local ISO times,
grouped amounts, lines that fit 80 columns. The follow tests drive the real `bakong`
in a pseudo-terminal of 80 columns and read what a user would see.

`Terminal` is shared with tests/cli/test_status_cli.py.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
from click.testing import CliRunner

from cli.client import NodeClient
from cli.main import cli
from tests.cli.conftest import Net
from tests.node.netutil import wait_for

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = 80
ROWS = 40
# two shared cores: a block after a transfer can take a while under load
DEADLINE_S = 90.0
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]|\x1b[=>]")
# local ISO times, as tables show them and to the millisecond
ISO_SECONDS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


class Terminal:
    """`bakong ARGS` in a pseudo-terminal of ROWS x COLUMNS; `text` is what it printed
    without escape sequences, `lines` that text cut where the terminal starts a line."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            # rich takes COLUMNS over the terminal's size; the test wants the terminal's
            if key not in ("COLUMNS", "LINES", "BAKONG_NODE", "BAKONG_PASSPHRASE")
        }
        env |= {"TERM": "xterm", "BAKONG_HOME": str(home)}
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "cli.main", *args],
            cwd=str(ROOT),
            env=env,
            dimensions=(ROWS, COLUMNS),
            encoding="utf-8",
            codec_errors="replace",
        )
        self.raw = ""

    @property
    def text(self) -> str:
        return _ANSI.sub("", self.raw)

    @property
    def lines(self) -> list[str]:
        return re.split(r"\r\n|\r|\n", self.text)

    def read(self, timeout: float = 0.5) -> bool:
        """Take what the child printed within `timeout` s; False once it has exited."""
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            return False
        return True

    def wait_until(self, condition: Callable[[str], object], what: str) -> object:
        """Read until `condition(text)` holds (its value), or fail showing the screen."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            found = condition(self.text)
            if found:
                return found
            assert time.monotonic() < deadline, f"no {what} in {DEADLINE_S}s:\n{self.text}"
            alive = self.read()
            assert alive or condition(self.text), f"exited before {what}:\n{self.text}"

    def assert_fits(self) -> None:
        wide = [line for line in self.lines if len(line) > COLUMNS]
        assert not wide, f"lines wider than {COLUMNS} columns: {wide}"

    def interrupt(self) -> int | None:
        """Ctrl-C as a user types it; the exit status once the child has ended."""
        self.child.sendintr()
        deadline = time.monotonic() + DEADLINE_S
        while self.read():
            assert time.monotonic() < deadline, f"still running after Ctrl-C:\n{self.text}"
        self.child.close()
        return self.child.exitstatus

    def kill(self) -> None:
        if self.child.isalive():
            self.child.kill(signal.SIGKILL)
        self.child.close(force=True)


@contextmanager
def terminal(home: Path, *args: str) -> Iterator[Terminal]:
    """A Terminal that is always killed, whatever the test does."""
    term = Terminal(home, *args)
    try:
        yield term
    finally:
        term.kill()


def long_customer(net: Net, bank: str) -> str:
    """A committed account whose name is as long as ids allow (32 characters), so that
    lines about it are wider than the terminal."""
    stem = net.new_account_name(bank, "long").split("@")[0]
    account = f"{stem}_{'x' * 32}"[:32] + f"@{bank}"
    assert net.ok_json("account", "create", account, "--no-key")["status"] == "committed"
    return account


# ---------------------------------------------------------------------------------------
# follow in a terminal


def test_follow_shows_header_then_the_new_block_of_a_transfer(net: Net) -> None:
    payee = long_customer(net, "wing")
    with terminal(net.home, "explorer", "follow", "--interval", "0.2") as term:
        term.wait_until(lambda text: "Ctrl-C to stop" in text, "header")
        assert term.lines[0].startswith(f"following {net.manifest.chain_id} at http://")
        tip = term.wait_until(
            lambda text: re.search(r"waiting for height (\d+) \(chain at (\d+)\)", text),
            "waiting line",
        )
        assert isinstance(tip, re.Match) and int(tip[1]) == int(tip[2]) + 1
        sent = net.ok_json("transfer", "--from", "admin@aba", "--to", payee, "--asset", "KHR",
                           "--amount", "1234567")  # fmt: skip
        assert sent["status"] == "committed"
        height = sent["height"]
        term.wait_until(lambda text: payee in text, "the transfer's line")
        block_line = next(line for line in term.lines if line.startswith(f"block {height} "))
        assert re.search(ISO_SECONDS, block_line), block_line
        assert re.search(r"\b1 tx$", block_line), block_line
        # the tx line is wider than the terminal: wrapped at a blank, indented
        start = next(
            i for i, line in enumerate(term.lines) if line.startswith(f"    {sent['hash'][:16]}")
        )
        shown = " ".join(line.strip() for line in term.lines[start : start + 3])
        assert f"admin@aba: transfer 1,234,567 KHR admin@aba -> {payee}" in shown, shown
        term.assert_fits()
        assert term.interrupt() == 0
    assert "Traceback" not in term.text and "error:" not in term.text


def test_follow_from_beyond_the_tip_says_what_it_waits_for(net: Net) -> None:
    with terminal(net.home, "explorer", "follow", "--from", "999999") as term:
        found = term.wait_until(
            lambda text: re.search(r"waiting for height 999999 \(chain at (\d+)\)", text),
            "waiting line",
        )
        assert isinstance(found, re.Match) and int(found[1]) >= 1
        assert "Ctrl-C to stop" in term.text
        term.assert_fits()
        assert term.interrupt() == 0
    assert "Traceback" not in term.text


def test_follow_json_prints_only_headers(net: Net) -> None:
    """--json stays one object per line: no header, no hint."""
    out = net.ok_json("issue", "--to", "admin@aclb", "--asset", "KHR", "--amount", "2")
    text = net.ok("explorer", "follow", "--from", str(out["height"]), "--limit-blocks", "1",
                  "--json")  # fmt: skip
    assert text.startswith("{") and len(text.splitlines()) == 1


# ---------------------------------------------------------------------------------------
# empty results, paging, values for people


def test_account_without_transactions_says_so(net: Net) -> None:
    # nothing can be older than the first block
    text = net.ok("explorer", "account", "admin@canadia", "--before", "1:0")
    assert "no transactions of admin@canadia before 1:0" in text
    assert "newest first" not in text and "more:" not in text


def test_blocks_beyond_the_tip_says_so(net: Net) -> None:
    text = net.ok("explorer", "blocks", "--from", "999999")
    assert re.fullmatch(r"no blocks from height 999999 \(chain at height \d+\)\n", text), text
    assert net.ok_json("explorer", "blocks", "--from", "999999") == []


def test_more_hint_only_when_a_page_follows(net: Net) -> None:
    alice = net.new_customer("aba")
    net.fund(alice, "KHR", "100")
    # two transactions (its creation, its funding): a page of two is the whole history
    page = net.ok_json("explorer", "account", alice, "--limit", "2")
    assert len(page["transactions"]) == 2 and page["next"] is None
    assert "more:" not in net.ok("explorer", "account", alice, "--limit", "2")
    # a page of one has a next page, and the hint leads to it
    text = net.ok("explorer", "account", alice, "--limit", "1")
    hint = re.search(r"more: bakong explorer account (\S+) --before (\d+:\d+)", text)
    assert hint is not None and hint[1] == alice, text
    rest = net.ok_json("explorer", "account", alice, "--limit", "1", "--before", hint[2])
    assert [t["commands"][0]["type"] for t in rest["transactions"]] == ["create_account"]
    assert rest["next"] is None


def test_human_times_are_local_iso_and_amounts_grouped(net: Net) -> None:
    out = net.ok_json("issue", "--to", "admin@aclb", "--asset", "USD", "--amount", "1234567.50")
    text = net.ok("explorer", "tx", out["hash"])
    assert "issue 1,234,567.50 USD to admin@aclb" in text
    created = re.search(r"created\s+(\S+)", text)
    assert created is not None and re.fullmatch(ISO_MS, created[1]), text
    # JSON keeps the machine values
    found = net.ok_json("explorer", "tx", out["hash"])
    assert isinstance(found["created_at"], int)
    assert found["commands"][0]["amount"] == "1234567.50"
    block = net.ok("explorer", "block", str(out["height"]))
    assert "1,234,567.50 USD" in block
    assert re.search(r"time\s+" + ISO_MS, block), block
    blocks = net.ok("explorer", "blocks", "--limit", "3")
    assert re.search(ISO_SECONDS, blocks), blocks


def test_explorer_tables_fit_80_columns(net: Net) -> None:
    payee = long_customer(net, "aba")
    sent = net.ok_json("transfer", "--from", "admin@aba", "--to", payee, "--asset", "USD",
                       "--amount", "1000000.25")  # fmt: skip
    env = {"COLUMNS": "80"}
    for args in (
        ("explorer", "block", str(sent["height"])),
        ("explorer", "account", payee),
        ("explorer", "blocks", "--limit", "5"),
        ("explorer", "follow", "--from", str(sent["height"]), "--limit-blocks", "1"),
    ):
        result = CliRunner().invoke(cli, list(args), env=net.env | env)
        assert result.exit_code == 0, result.output
        wide = [line for line in result.stdout.splitlines() if len(line) > 80]
        assert not wide, (args, wide)
        # a hash is never cut in two
        assert sent["hash"][:16] in result.stdout or args[1] == "blocks", (args, result.stdout)


def test_follow_and_block_show_the_rejections_of_a_height(net: Net) -> None:
    """What a node found failing at a height is that node's view (the proposer that left
    the tx out knows it at once): follow and block through the node that lists it."""
    payer = net.new_customer("aba")
    line = net.fails("insufficient_funds", "transfer", "--from", payer, "--to", "admin@wing",
                     "--asset", "KHR", "--amount", "5")  # fmt: skip
    tx_hash = line.split(" tx ")[1].split()[0]

    def rejected_at() -> tuple[str, int] | None:
        for node in net.manifest.nodes:
            client = NodeClient(net.home, node.http_url)
            tip = int(client.get_status()["height"])
            for height in range(tip, max(0, tip - 10), -1):
                if any(e["hash"] == tx_hash for e in client.get_block(str(height))["rejected"]):
                    return node.http_url, height
        return None

    found = wait_for(rejected_at, DEADLINE_S, "the rejection listed at its height")
    url, height = found
    shown = f"rejected {tx_hash[:16]}  insufficient_funds: {payer} holds 0 KHR"
    text = net.ok("explorer", "follow", "--from", str(height), "--limit-blocks", "1",
                  "--node", url)  # fmt: skip
    assert shown in text, text
    assert shown in net.ok("explorer", "block", str(height), "--node", url)


def test_rejected_tx_shows_the_details(net: Net) -> None:
    result = net.run("transfer", "--from", "admin@aclb", "--to", "admin@aba", "--asset", "USD",
                     "--amount", "99999999999", "--json")  # fmt: skip
    rejected = result.stdout
    tx_hash = re.search(r'"hash": "([0-9a-f]{64})"', rejected)
    assert tx_hash is not None, rejected
    text = net.ok("explorer", "tx", tx_hash[1])
    assert re.search(r"reason\s+insufficient_funds: \S", text), text
