"""The test-mode clock of a node (BAKONG_TEST_CLOCK_SKEW_MS, honoured only with
BAKONG_TEST_MODE=1): the nemesis skews a validator's clock with it."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cli.devnet.testnet import CONFIG_FILE, init_testnet
from node.config import ConfigError
from node.main import CLOCK_SKEW_ENV, TEST_MODE_ENV, get_test_clock
from tests.node.netutil import FAST, find_free_base, http, running_testnet, wait_for

DAY_MS = 86_400_000


def test_the_skew_applies_only_in_test_mode() -> None:
    assert get_test_clock({CLOCK_SKEW_ENV: "5000"}) == (None, 0)
    assert get_test_clock({TEST_MODE_ENV: "1"}) == (None, 0)
    assert get_test_clock({TEST_MODE_ENV: "yes", CLOCK_SKEW_ENV: "5000"}) == (None, 0)
    for raw, skew in (("5000", 5000), ("-90000", -90000), (" 7 ", 7)):
        clock, got = get_test_clock({TEST_MODE_ENV: "1", CLOCK_SKEW_ENV: raw})
        assert got == skew and clock is not None
        assert abs(clock() - (int(time.time() * 1000) + skew)) < 1000


def test_a_skew_that_is_not_a_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=CLOCK_SKEW_ENV):
        get_test_clock({TEST_MODE_ENV: "1", CLOCK_SKEW_ENV: "1h"})


def _block_time_lead_ms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_mode: str
) -> tuple[int, str]:
    """How far ahead of the machine's clock a lone validator, run with a skew of one day,
    dates its first (heartbeat) block."""
    monkeypatch.setenv(CLOCK_SKEW_ENV, str(DAY_MS))
    monkeypatch.setenv(TEST_MODE_ENV, test_mode)
    consensus = replace(FAST, heartbeat_ms=100)
    with running_testnet(tmp_path, validators=1, observers=0, consensus=consensus) as net:
        [name] = net.names
        wait_for(lambda: (net.heights()[name] or 0) >= 1, 30, "a heartbeat block")
        before = int(time.time() * 1000)
        code, block = http(net.url(name) + "/v1/blocks/1")
        assert code == 200, block
        log = (net.node_dir(name) / "node.log").read_text()
        return int(block["time"]) - before, log


def test_a_node_in_test_mode_dates_its_blocks_by_its_skewed_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead, log = _block_time_lead_ms(tmp_path, monkeypatch, "1")
    assert DAY_MS - 60_000 < lead <= DAY_MS, lead
    assert f"clock is +{DAY_MS} ms off the system clock" in log


def test_without_test_mode_the_skew_variable_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead, log = _block_time_lead_ms(tmp_path, monkeypatch, "0")
    assert abs(lead) < 60_000, lead
    assert "off the system clock" not in log


def test_node_run_with_a_bad_skew_exits_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "testnet"
    init_testnet(home, validators=1, observers=0, base_port=find_free_base(2))
    node_dir = next((home / "nodes").iterdir())
    assert (node_dir / CONFIG_FILE).is_file()
    env = {"PATH": "/usr/bin:/bin", TEST_MODE_ENV: "1", CLOCK_SKEW_ENV: "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "node", "run", "--home", str(node_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: bad_config: {CLOCK_SKEW_ENV}: expected an integer (ms), got 'soon'"
    ], done.stderr
