"""`bakong bank register` and `bakong validator add|remove` on real nodes.

A dedicated testnet (4 validators + 1 observer, always stopped): the observer becomes a
fifth validator, signs commits from the documented height (a change committed at h takes
effect at h + 2), and stops again after `validator remove`, while blocks keep committing.
Changing the validator set would disturb other tests, hence not the shared testnet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.admin import get_bank_node_key_path
from cli.devnet import testnet as tn
from cli.keystore import Keystore
from cli.testnet import write_wallet
from ledger.crypto import PrivateKey
from node.config import ConsensusConfig
from node.keyfile import read_key_file
from tests.cli.conftest import FAST, Net
from tests.node.netutil import http, init_on_free_ports, wait_for

pytestmark = pytest.mark.slow


def start_testnet(home: Path, validators: int, observers: int, consensus: ConsensusConfig) -> Net:
    manifest = init_on_free_ports(
        home, validators=validators, observers=observers, consensus=consensus, wallet=write_wallet
    )
    return Net(home, manifest)


@pytest.fixture(scope="module")
def admin_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    home = tmp_path_factory.mktemp("admin-net") / "testnet"
    net = start_testnet(home, 4, 1, FAST)
    try:
        tn.up_testnet(home, timeout=90)
        yield net
    finally:
        tn.down_testnet(home, grace=5.0)


def observer_of(net: Net) -> str:
    return next(n.name for n in net.manifest.nodes if not n.validator)


def get(net: Net, path: str, node: str = "nbc") -> Any:
    code, body = http(net.url(node) + path, timeout=10.0)
    assert code == 200, (path, code, body)
    return body


def height(net: Net, node: str = "nbc") -> int:
    return int(get(net, "/v1/status", node)["height"])


def reach(net: Net, target: int) -> None:
    """Blocks are made for txs only: issue 1 riel at a time until the chain is at `target`."""
    while height(net) < target:
        assert (
            net.ok_json("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "1")["status"]
            == "committed"
        )


def signers(net: Net, block_height: int) -> set[str]:
    """The node keys (hex) whose precommits commit block `block_height`."""
    reach(net, block_height)
    commit = get(net, f"/v1/blocks/{block_height}")["commit"]
    return {sig["public_key"] for sig in commit["signatures"]}


def names_in_commit(net: Net, block_height: int) -> set[str]:
    commit = get(net, f"/v1/blocks/{block_height}")["commit"]
    return {sig["validator"] for sig in commit["signatures"]}


def wait_until_signs(net: Net, node_key: str, start: int, what: str) -> int:
    """The first height >= start whose commit `node_key` signed (waiting for blocks)."""
    checked = {"next": start}

    def signed() -> int | None:
        reach(net, checked["next"])
        if node_key in signers(net, checked["next"]):
            return checked["next"]
        checked["next"] += 1
        return None

    return int(wait_for(signed, 60, what))


def keep_committing(net: Net, blocks: int = 3) -> None:
    """Blocks still commit (txs go in) and every node agrees on the chain."""
    start = height(net)
    for _ in range(blocks):
        assert (
            net.ok_json("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "1")["status"]
            == "committed"
        )
    assert height(net) >= start + 1
    heights = {n.name: height(net, n.name) for n in net.manifest.nodes}
    target = max(heights.values())
    wait_for(
        lambda: all(height(net, n.name) >= target for n in net.manifest.nodes),
        60,
        "every node at the tip",
    )


# ---------------------------------------------------------------------------------------
# the last validator (its own one-node testnet; first, before the module's testnet starts)


def test_removing_the_last_validator_is_refused(tmp_path: Path) -> None:
    net = start_testnet(tmp_path / "solo", 1, 0, FAST)
    try:
        tn.up_testnet(net.home, timeout=90)
        last = net.fails("invalid_validator_change", "validator", "remove", "nbc")
        assert "rejected" in last
        # still the validator, still committing
        assert get(net, "/v1/status")["validator"] is True
        assert (
            net.ok_json("issue", "--to", "admin@nbc", "--asset", "KHR", "--amount", "5")["status"]
            == "committed"
        )
    finally:
        tn.down_testnet(net.home, grace=5.0)


# ---------------------------------------------------------------------------------------
# add a fifth validator, then remove it


def test_validator_add_then_remove(admin_net: Net) -> None:
    net = admin_net
    observer = observer_of(net)
    status = get(net, "/v1/status", observer)
    assert status["validator"] is False
    key = status["node_key"]

    added = net.ok_json("validator", "add", observer)
    assert added["status"] == "committed", added
    h = int(added["height"])
    # until h + 1 the old set of four commits; from h + 2 the observer is one of five
    for before in range(max(1, h - 2), h + 2):
        assert key not in signers(net, before), f"{observer} signed block {before} (added at {h})"
    first = wait_until_signs(net, key, h + 2, f"{observer} signing a commit after {h + 2}")
    assert first >= h + 2
    assert observer in names_in_commit(net, first)
    wait_for(lambda: get(net, "/v1/status", observer)["validator"] is True, 30, "validator")
    # five validators: a commit needs floor(2*5/3)+1 = 4 signatures
    for after in range(h + 2, height(net) + 1):
        assert len(signers(net, after)) >= 4, after
    keep_committing(net)

    removed = net.ok("validator", "remove", observer)
    match = re.search(r"committed tx ([0-9a-f]{64}) at height (\d+)", removed)
    assert match is not None, removed
    r = int(match.group(2))
    assert f"{observer} stops voting at height {r + 2}" in removed
    keep_committing(net, blocks=4)
    tip = height(net)
    assert tip >= r + 4
    for after in range(r + 2, tip + 1):
        assert key not in signers(net, after), f"{observer} signed block {after} (removed at {r})"
        assert len(signers(net, after)) >= 3, after
    wait_for(lambda: get(net, "/v1/status", observer)["validator"] is False, 30, "observer")

    # and once more: a removed validator can come back
    again = net.ok_json("validator", "add", observer, "--no-wait")
    assert again["status"] == "pending"
    wait_for(
        lambda: get(net, f"/v1/transactions/{again['hash']}?wait_ms=1000")["status"] == "committed",
        60,
        "the second add",
    )
    back = int(get(net, f"/v1/transactions/{again['hash']}")["height"])
    wait_until_signs(net, key, back + 2, f"{observer} signing again")
    net.ok_json("validator", "remove", observer)


def test_validator_errors(admin_net: Net) -> None:
    net = admin_net
    observer = observer_of(net)
    net.fails("unknown_bank", "validator", "add", "nosuch")
    net.fails("unknown_bank", "validator", "remove", "nosuch")
    net.fails("invalid_validator_change", "validator", "add", "aba")
    net.fails("invalid_validator_change", "validator", "remove", observer)
    net.fails("permission_denied", "validator", "add", observer, "--as", "admin@aba")
    net.fails("permission_denied", "validator", "remove", "wing", "--as", "admin@aba")
    net.fails("invalid_id", "validator", "add", "Not-A-Bank")
    # none of them changed the set
    assert get(net, "/v1/status", observer)["validator"] is False
    assert get(net, "/v1/status", "wing")["validator"] is True


def test_validator_add_offline_prints_a_signed_tx(admin_net: Net) -> None:
    out = admin_net.ok("validator", "add", observer_of(admin_net), "--offline")
    assert re.fullmatch(r"[0-9a-f]+\n", out)


# ---------------------------------------------------------------------------------------
# bank register


def test_bank_register_new_bank(admin_net: Net) -> None:
    net = admin_net
    out = net.ok_json("bank", "register", "prince", "--name", "Prince Bank")
    assert out["status"] == "committed", out
    wallet_key = Keystore(net.home).read("admin@prince").public_key.hex()
    found = net.ok_json("balance", "admin@prince")
    assert found["role"] == "bank" and found["public_key"] == wallet_key
    assert found["balances"] == {"KHR": "0", "USD": "0.00"} and found["frozen"] is False
    # its node key is kept for the node it may run one day
    node_key = read_key_file(get_bank_node_key_path(net.home, "prince"))
    assert len(node_key.public_key) == 32
    # the bank works: money in, a customer account signed with its wallet key, a payment
    net.ok_json("issue", "--to", "admin@prince", "--asset", "USD", "--amount", "25.00")
    customer = net.new_customer("prince")
    net.fund(customer, "USD", "12.50")
    assert net.balance(customer, "USD") == "12.50"
    assert net.balance("admin@prince", "USD") == "12.50"
    # it has no node: not a validator, and the network did not change
    assert net.ok_json("explorer", "tx", out["hash"])["signer"] == "admin@nbc"


def test_bank_register_human_output(admin_net: Net) -> None:
    out = admin_net.ok("bank", "register", "sathapana", "--name", "Sathapana Bank")
    assert "committed tx" in out and "settlement account admin@sathapana" in out
    assert str(get_bank_node_key_path(admin_net.home, "sathapana")) in out


def test_bank_register_with_given_keys(admin_net: Net) -> None:
    net = admin_net
    operator, node = PrivateKey.generate(), PrivateKey.generate()
    out = net.ok_json(
        "bank", "register", "hattha", "--name", "Hattha Bank",
        "--operator-key", operator.public_key.hex(), "--node-key", node.public_key.hex(),
    )  # fmt: skip
    assert out["status"] == "committed"
    assert net.ok_json("balance", "admin@hattha")["public_key"] == operator.public_key.hex()
    assert not Keystore(net.home).has("admin@hattha")
    assert not get_bank_node_key_path(net.home, "hattha").exists()


def test_bank_register_errors(admin_net: Net) -> None:
    net = admin_net
    keystore = Keystore(net.home)
    net.fails("bank_exists", "bank", "register", "aba", "--name", "Again")
    assert not get_bank_node_key_path(net.home, "aba").exists()
    # not the central bank: rejected, and the keys made for it are gone again
    net.fails("permission_denied", "bank", "register", "rogue", "--name", "R", "--as", "admin@aba")
    assert not keystore.has("admin@rogue")
    assert not get_bank_node_key_path(net.home, "rogue").exists()
    net.fails("unknown_account", "balance", "admin@rogue")
    # checked before anything is signed
    net.fails("invalid_id", "bank", "register", "No_Such", "--name", "X")
    net.fails("invalid_argument", "bank", "register", "emptyname", "--name", " ")
    net.fails(
        "invalid_public_key", "bank", "register", "badkey", "--name", "X", "--operator-key", "ab"
    )
    net.fails(
        "invalid_public_key", "bank", "register", "badnode", "--name", "X", "--node-key", "zz"
    )
    net.fails("malformed_tx", "bank", "register", "longname", "--name", "x" * 200)
    assert not get_bank_node_key_path(net.home, "longname").exists()
    net.ok("keys", "new", "admin@keyed")
    net.fails("key_exists", "bank", "register", "keyed", "--name", "K", "--new-key")
    result = net.run(
        "bank", "register", "both", "--name", "B", "--new-key", "--operator-key", "00" * 32
    )
    assert result.exit_code != 0 and "at most one of --operator-key and --new-key" in result.output
