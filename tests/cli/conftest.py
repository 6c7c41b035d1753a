"""One real testnet (4 validators, 1 observer, fast timeouts, free ports) shared by the
wallet and explorer CLI tests of a session; it is always stopped at the end.

Tests share the chain, so each names its accounts uniquely (`net.new_account_name`)
and asserts on balance differences, never on absolute heights.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.devnet import testnet as tn
from cli.main import cli
from cli.testnet import write_wallet
from node.config import ConsensusConfig
from tests.node.netutil import init_on_free_ports

FAST = ConsensusConfig(
    timeout_propose_ms=300,
    timeout_propose_delta_ms=100,
    timeout_prevote_ms=150,
    timeout_prevote_delta_ms=50,
    timeout_precommit_ms=150,
    timeout_precommit_delta_ms=50,
    timeout_commit_ms=20,
)
NODES = 5


@dataclass
class Net:
    """A running testnet and helpers to drive the CLI against it."""

    home: Path
    manifest: tn.Manifest
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, name: str) -> str:
        return next(n.http_url for n in self.manifest.nodes if n.name == name)

    @property
    def validator_urls(self) -> list[str]:
        return [n.http_url for n in self.manifest.nodes if n.validator]

    def new_account_name(self, bank: str, stem: str = "u") -> str:
        return f"{stem}{next(self._names)}_{random.randrange(10**6)}@{bank}"

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, input=input)

    @property
    def env(self) -> dict[str, str | None]:
        return {"BAKONG_HOME": str(self.home), "BAKONG_NODE": None, "BAKONG_PASSPHRASE": None}

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    def ok_json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, code: str, *args: str) -> str:
        """Non-zero exit, and the last stderr line is `error: <code>: <message>`."""
        result = self.run(*args)
        assert result.exit_code != 0, (args, result.output)
        assert "Traceback" not in result.output
        last = result.stderr.rstrip().splitlines()[-1]
        assert last.startswith(f"error: {code}: "), (args, result.stderr)
        return last

    def balance(self, account: str, asset: str) -> str:
        return str(self.ok_json("balance", account)["balances"][asset])

    def new_customer(self, bank: str, *flags: str) -> str:
        """A committed account at `bank` (with a wallet key unless --no-key)."""
        account = self.new_account_name(bank)
        assert self.ok_json("account", "create", account, *flags)["status"] == "committed"
        return account

    def fund(self, account: str, asset: str, amount: str) -> None:
        """Pay `account` from its bank's settlement account (custodial: the bank signs)."""
        bank = account.split("@")[1]
        sent = self.ok_json(
            "transfer", "--from", f"admin@{bank}", "--to", account, "--asset", asset,
            "--amount", amount,
        )  # fmt: skip
        assert sent["status"] == "committed", sent


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    home = tmp_path_factory.mktemp("cli-net") / "testnet"
    manifest = init_on_free_ports(
        home, validators=4, observers=1, consensus=FAST, wallet=write_wallet
    )
    try:
        tn.up_testnet(home, timeout=90)
        yield Net(home, manifest)
    finally:
        tn.down_testnet(home)
