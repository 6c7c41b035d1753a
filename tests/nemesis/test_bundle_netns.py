"""The deployment round trip on hosts of their own: `bakong testnet init --hosts` with
the addresses of five network namespaces, `bakong testnet bundle`, and each bundled home
started with `bakong node run` inside its own namespace (its own address and network
stack, every node on the same default ports). They must find each other across the
bridge, commit a transfer the operator sends from the testnet home, and agree on the
block; afterwards nothing of the run is left. Needs root (CI runs as root)."""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.devnet import testnet as tn
from cli.devnet.nemesis.netns import (
    Network,
    find_leftovers,
    list_links,
    list_netns,
    unusable_reason,
)
from cli.devnet.processes import is_process_alive, spawn_detached, terminate_all
from cli.main import cli
from tests.node.netutil import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        unusable_reason() is not None, reason=f"network namespaces: {unusable_reason()}"
    ),
]

START_S = 90.0
ENV = {"BAKONG_HOME": None, "BAKONG_PASSPHRASE": None, "BAKONG_NODE": None}


def ok(*args: str, env: dict[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env={**ENV, **(env or {})})
    assert result.exit_code == 0, (args, result.output)
    return result


def get_json(url: str, context: ssl.SSLContext) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def test_bundled_homes_form_a_network_in_namespaces(tmp_path: Path) -> None:
    names = [f"host{i}" for i in range(5)]
    network = Network.plan(names)
    run_id = network.run_id
    pids: dict[str, int] = {}
    try:
        network.build()
        addresses = [network.address(n) for n in names]
        home = tmp_path / "net"
        # the CLI as an operator runs it: addresses only, default ports, TLS
        ok("testnet", "init", "--home", str(home), "--hosts", ",".join(addresses), "--tls")
        manifest = tn.load_manifest(home)
        assert [n.http_url for n in manifest.nodes] == [
            f"https://{a}:{tn.DEFAULT_BASE_PORT + 1}" for a in addresses
        ]
        network.relabel([n.name for n in manifest.nodes])
        out = tmp_path / "bundle"
        ok("testnet", "bundle", "--home", str(home), "--out", str(out))
        for node in manifest.nodes:
            bundled = out / node.name / "home"
            command = [*network.exec_args(node.name), sys.executable, "-m", "cli.main",
                       "node", "run", "--home", str(bundled)]  # fmt: skip
            pids[node.name] = spawn_detached(command, out / node.name / "node.out")
        context = ssl.create_default_context(cafile=str(out / "ca.crt"))

        def ready() -> bool:
            for node in manifest.nodes:
                if not is_process_alive(pids[node.name]):
                    log = (out / node.name / "node.out").read_text()[-2000:]
                    raise AssertionError(f"{node.name} exited:\n{log}")
            statuses = [get_json(f"{n.http_url}/v1/status", context) for n in manifest.nodes]
            return all(
                s is not None and (not n.validator or s["peers"] >= manifest.validator_count - 1)
                for n, s in zip(manifest.nodes, statuses, strict=True)
            )

        wait_for(ready, START_S, "the bundled nodes serving and connected across the bridge")
        # every node really is in its own namespace: its process is listed there
        for node in manifest.nodes:
            assert pids[node.name] in network.pids(node.name)
        sent = json.loads(
            ok(
                "transfer", "--from", "admin@aclb", "--to", "admin@canadia", "--asset", "KHR",
                "--amount", "1234", "--json", env={"BAKONG_HOME": str(home)},
            ).stdout
        )  # fmt: skip
        assert sent["status"] == "committed", sent
        height = sent["height"]

        def converged() -> Any:
            statuses = [get_json(f"{n.http_url}/v1/status", context) for n in manifest.nodes]
            if any(s is None or s["height"] < height for s in statuses):
                return None
            return statuses

        wait_for(converged, 60, "every node past the transfer's height")
        blocks = [get_json(f"{n.http_url}/v1/blocks/{height}", context) for n in manifest.nodes]
        assert all(b is not None for b in blocks)
        assert len({(b["hash"], b["state_hash"]) for b in blocks}) == 1
        assert sent["hash"] in [tx["hash"] for tx in blocks[0]["txs"]]
        for node in manifest.nodes:
            assert (out / node.name / "home" / "data").is_dir()
    finally:
        outcomes = terminate_all(pids, grace=10.0, kill_wait=5.0)
        network.close()
    assert "survived" not in outcomes.values(), outcomes
    assert find_leftovers(run_id) == []
    assert not any(n.startswith(run_id) for n in list_netns() + list_links())
    assert not any(is_process_alive(p) for p in pids.values())
