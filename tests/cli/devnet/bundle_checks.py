"""What both bundle round trips check (on loopback aliases, tests/cli/devnet/test_bundle.py,
and in network namespaces, tests/nemesis/test_bundle_netns.py): the bundled nodes serve
and connect, and a transfer sent from the testnet home commits with one block and one
state on every node."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cli.devnet import testnet as tn
from cli.devnet.processes import is_process_alive
from tests.node.netutil import wait_for

# runs `bakong ARGS` with the testnet home's environment; its stdout
RunCli = Callable[..., str]


def get_json(url: str, context: ssl.SSLContext) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def wait_bundle_ready(
    manifest: tn.Manifest,
    pids: Mapping[str, int],
    out: Path,
    context: ssl.SSLContext,
    timeout: float,
) -> None:
    """Every bundled node (its output in `out/NAME/node.out`) serves, and every validator
    sees the other validators; a node that exits fails at once with its log."""

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

    wait_for(ready, timeout, "the bundled nodes serving and connected")


def check_transfer_commits(manifest: tn.Manifest, context: ssl.SSLContext, run_cli: RunCli) -> None:
    """The operator's machine drives the network from the testnet home (its wallet, its
    manifest's URLs at the hosts' addresses, its CA): a transfer commits, and every node
    reaches one height, block and state hash, holds the tx in that block and shows the
    payee's one balance."""
    sent = json.loads(
        run_cli("transfer", "--from", "admin@aclb", "--to", "admin@canadia", "--asset", "KHR",
                "--amount", "1234", "--json")
    )  # fmt: skip
    assert sent["status"] == "committed", sent
    height = sent["height"]

    def converged() -> Any:
        statuses = [get_json(f"{n.http_url}/v1/status", context) for n in manifest.nodes]
        if any(s is None or s["height"] < height for s in statuses):
            return None
        keys = {(s["height"], s["block_hash"], s["state_hash"]) for s in statuses}
        return statuses[0] if len(keys) == 1 else None

    wait_for(converged, 60, "every node at the same height, block and state hash")
    blocks = [get_json(f"{n.http_url}/v1/blocks/{height}", context) for n in manifest.nodes]
    assert all(b is not None for b in blocks)
    assert len({(b["hash"], b["state_hash"]) for b in blocks}) == 1
    assert sent["hash"] in [tx["hash"] for tx in blocks[0]["txs"]]
    balances = [
        get_json(f"{n.http_url}/v1/accounts/admin@canadia", context)["balances"]["KHR"]
        for n in manifest.nodes
    ]
    assert len(set(balances)) == 1
