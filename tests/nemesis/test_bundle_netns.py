"""The deployment round trip on hosts of their own: `bakong testnet init --hosts` with
the addresses of five network namespaces, `bakong testnet bundle`, and each bundled home
started with `bakong node run` inside its own namespace (its own address and network
stack, every node on the same default ports). They must find each other across the
bridge, commit a transfer the operator sends from the testnet home, and agree on the
block; afterwards nothing of the run is left. Needs root (CI runs as root)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

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
from tests.cli.devnet.bundle_checks import check_transfer_commits, wait_bundle_ready

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
        wait_bundle_ready(manifest, pids, out, context, START_S)
        # every node really is in its own namespace: its process is listed there
        for node in manifest.nodes:
            assert pids[node.name] in network.pids(node.name)
        env = {"BAKONG_HOME": str(home)}
        check_transfer_commits(manifest, context, lambda *args: ok(*args, env=env).stdout)
        for node in manifest.nodes:
            assert (out / node.name / "home" / "data").is_dir()
    finally:
        outcomes = terminate_all(pids, grace=10.0, kill_wait=5.0)
        network.close()
    assert "survived" not in outcomes.values(), outcomes
    assert find_leftovers(run_id) == []
    assert not any(n.startswith(run_id) for n in list_netns() + list_links())
    assert not any(is_process_alive(p) for p in pids.values())
