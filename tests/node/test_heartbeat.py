"""Integration: with `consensus.heartbeat_ms` set, an idle chain grows at that pace."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.node.netutil import FAST, running_testnet, wait_for

pytestmark = pytest.mark.slow


def test_heartbeat_makes_empty_blocks_at_its_interval(tmp_path: Path) -> None:
    config = replace(FAST, heartbeat_ms=500)
    with running_testnet(tmp_path, validators=4, observers=0, consensus=config) as net:
        start = wait_for(lambda: net.status("nbc"), 30, "nbc serving")["height"]
        began = time.monotonic()
        wait_for(lambda: net.status("nbc")["height"] >= start + 3, 30, "three heartbeat blocks")
        elapsed = time.monotonic() - began
        grown = net.status("nbc")["height"] - start
        # at most one block per heartbeat interval (plus the one in flight)
        assert grown <= elapsed / 0.5 + 2
        assert net.wait_converged()["height"] >= start + 3
