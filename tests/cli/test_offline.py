"""Offline signing: `--offline` prints a signed tx, `bakong tx send` submits it, once."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from cli.keystore import Keystore
from ledger.commands import CreateAccount, Transfer
from ledger.constants import TX_VERSION
from ledger.crypto import PrivateKey
from ledger.errors import CodecError
from ledger.tx import SignedTx, TxBody, is_signature_valid, sign_tx
from tests.cli.conftest import Net

DEAD_NODE = "http://127.0.0.1:9"


def cents(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int(frac)


def offline_transfer(net: Net, *extra: str) -> str:
    args = ["transfer", "--from", "admin@aba", "--to", "admin@wing", "--asset", "USD"]
    out = net.ok(*args, "--amount", "0.05", "--offline", *extra)
    lines = out.splitlines()
    assert len(lines) == 1
    return lines[0]


def test_basic_offline_with_nonce_contacts_no_node(net: Net) -> None:
    tx_hex = offline_transfer(net, "--nonce", "123456", "--node", DEAD_NODE, "--memo", "m")
    tx = SignedTx.decode(bytes.fromhex(tx_hex))
    assert is_signature_valid(tx)
    body = tx.body
    assert (body.signer, body.nonce, body.chain_id, body.memo) == (
        "admin@aba", 123456, net.manifest.chain_id, "m"
    )  # fmt: skip
    assert body.commands == (Transfer("admin@aba", "admin@wing", "USD", 5),)


def test_offline_json_gives_hash_and_hex(net: Net) -> None:
    out = net.ok_json("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "1",
                      "--offline", "--nonce", "0", "--node", DEAD_NODE)  # fmt: skip
    assert SignedTx.decode(bytes.fromhex(out["tx"])).hash.hex() == out["hash"]


def test_offline_tx_built_on_one_node_commits_on_another_once(net: Net) -> None:
    """The acceptance case: nonce read from nbc, submitted to aba, replayed to both."""
    before = cents(net.ok_json("balance", "admin@wing")["balances"]["USD"])
    tx_hex = offline_transfer(net, "--node", net.url("nbc"))
    tx_hash = SignedTx.decode(bytes.fromhex(tx_hex)).hash.hex()
    sent = net.ok_json("tx", "send", tx_hex, "--node", net.url("aba"))
    assert sent["hash"] == tx_hash and sent["status"] == "committed"
    for node in ("aba", "nbc", "wing"):
        result = net.run("tx", "send", tx_hex, "--node", net.url(node), "--json")
        assert result.exit_code != 0
        replay = json.loads(result.stdout)
        assert replay["status"] == "rejected"
        assert replay["error"] in {"already_committed", "duplicate"}
    after = cents(net.ok_json("balance", "admin@wing")["balances"]["USD"])
    # committed exactly once: 0.05 more, not 0.20
    assert after - before == 5


def test_tx_send_reads_stdin(net: Net) -> None:
    tx_hex = offline_transfer(net)
    result = net.run("tx", "send", "-", "--json", input=tx_hex + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "committed"


def test_offline_account_create_stores_the_key(net: Net) -> None:
    account = net.new_account_name("wing")
    tx_hex = net.ok("account", "create", account, "--offline").strip()
    tx = SignedTx.decode(bytes.fromhex(tx_hex))
    (command,) = tx.body.commands
    assert isinstance(command, CreateAccount)
    assert command.public_key == Keystore(net.home).read(account).public_key
    assert net.ok_json("tx", "send", tx_hex)["status"] == "committed"
    assert net.ok_json("balance", account)["account"] == account


def test_invalid_replay_while_pending(net: Net) -> None:
    tx_hex = offline_transfer(net)
    first = net.ok_json("tx", "send", tx_hex, "--no-wait", "--node", net.url("nbc"))
    assert first["status"] == "pending"
    result = net.run("tx", "send", tx_hex, "--node", net.url("nbc"))
    assert result.exit_code != 0
    # still pending (duplicate) or already in a block (already_committed)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(("error: duplicate: ", "error: already_committed: ")), last
    assert net.ok_json("tx", "status", first["hash"], "--wait", "20")["status"] == "committed"


def test_invalid_offline_without_nonce_or_node(net: Net) -> None:
    net.fails("node_unreachable", "freeze", "admin@aba", "--offline", "--node", DEAD_NODE)


def test_invalid_offline_without_genesis(net: Net, tmp_path: Path) -> None:
    """A home with the wallet but no genesis.json: no chain id to sign for, offline."""
    shutil.copytree(net.home / "wallet", tmp_path / "wallet")
    net.fails("no_genesis", "freeze", "admin@aba", "--offline", "--nonce", "1",
              "--home", str(tmp_path))  # fmt: skip


def test_without_genesis_asks_the_node(net: Net, tmp_path: Path) -> None:
    """Online, the chain id and asset decimals come from the node (GET /v1/assets)."""
    shutil.copytree(net.home / "wallet", tmp_path / "wallet")
    out = net.ok_json("issue", "--to", "admin@aba", "--asset", "USD", "--amount", "0.01",
                      "--home", str(tmp_path), "--node", net.url("wing"))  # fmt: skip
    assert out["status"] == "committed"


def test_invalid_send_bad_hex(net: Net) -> None:
    net.fails("bad_hex", "tx", "send", "not hex")


def test_invalid_send_malformed(net: Net) -> None:
    with pytest.raises(CodecError) as info:
        SignedTx.decode(bytes.fromhex("c0ffee"))
    net.fails(info.value.code, "tx", "send", "c0ffee")


def test_invalid_send_bad_signature(net: Net) -> None:
    """Signed by a key that is not the signer's: refused at the door, never committed."""
    nonce = net.ok_json("balance", "admin@aba")["nonce"]
    body = TxBody(TX_VERSION, net.manifest.chain_id, "admin@aba", nonce, int(time.time() * 1000),
                  (Transfer("admin@aba", "admin@wing", "KHR", 1),))  # fmt: skip
    forged = sign_tx(body, PrivateKey.generate()).encode().hex()
    net.fails("bad_signature", "tx", "send", forged)
