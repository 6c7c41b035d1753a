"""`bakong account create|issue|redeem|transfer|freeze|unfreeze|tx status|balance`
against a real testnet: the --json shapes of the contract and one test per error case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.client import NodeClient
from cli.keystore import Keystore
from cli.session import TxOptions, TxSession
from tests.cli.conftest import Net
from tests.node.netutil import wait_for

STATUS_KEYS = {"hash", "status", "height"}
BALANCE_KEYS = {"account", "balances", "nonce", "frozen"}


def transfer_args(source: str, target: str, asset: str, amount: str) -> list[str]:
    return ["transfer", "--from", source, "--to", target, "--asset", asset, "--amount", amount]


def signer_of(net: Net, tx_hash: str) -> Any:
    return net.ok_json("explorer", "tx", tx_hash)["signer"]


def test_account_create_generates_key_into_wallet(net: Net) -> None:
    account = net.new_account_name("aba")
    out = net.ok_json("account", "create", account)
    assert set(out) >= STATUS_KEYS and out["status"] == "committed"
    assert isinstance(out["height"], int) and "error" not in out
    wallet_key = Keystore(net.home).read(account).public_key.hex()
    found = net.ok_json("balance", account)
    assert found["public_key"] == wallet_key
    assert found["role"] == "customer" and found["nonce"] == 0 and found["frozen"] is False
    assert signer_of(net, out["hash"]) == "admin@aba"


def test_account_create_no_key_is_custodial(net: Net) -> None:
    account = net.new_customer("wing", "--no-key")
    assert net.ok_json("balance", account)["public_key"] == ""
    assert not Keystore(net.home).has(account)


def test_account_create_reuses_wallet_key(net: Net) -> None:
    account = net.new_account_name("aclb")
    net.ok("keys", "new", account)
    wallet_key = Keystore(net.home).read(account).public_key.hex()
    assert net.ok_json("account", "create", account)["status"] == "committed"
    assert net.ok_json("balance", account)["public_key"] == wallet_key


def test_invalid_account_exists_removes_the_new_key(net: Net) -> None:
    account = net.new_customer("aba", "--no-key")
    net.fails("account_exists", "account", "create", account)
    # the generated key would name an account whose key is not it
    assert not Keystore(net.home).has(account)


def test_issue_and_redeem_change_the_settlement_balance(net: Net) -> None:
    before = net.ok_json("balance", "admin@wing")["balances"]["USD"]
    issued = net.ok_json("issue", "--to", "admin@wing", "--asset", "USD", "--amount", "12.50")
    assert issued["status"] == "committed"
    assert signer_of(net, issued["hash"]) == "admin@nbc"
    redeemed = net.ok_json("redeem", "--from", "admin@wing", "--asset", "usd", "--amount", "2.25")
    assert redeemed["status"] == "committed"
    after = net.ok_json("balance", "admin@wing")["balances"]["USD"]
    assert to_cents(after) - to_cents(before) == 1025


def to_cents(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int(frac or 0)


def test_transfer_self_custody_signs_with_own_key(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    net.fund(alice, "USD", "20.00")
    out = net.ok_json(*transfer_args(alice, bob, "USD", "7.25"), "--memo", "lunch")
    assert out["status"] == "committed"
    assert net.balance(alice, "USD") == "12.75" and net.balance(bob, "USD") == "7.25"
    assert signer_of(net, out["hash"]) == alice
    assert net.ok_json("explorer", "tx", out["hash"])["memo"] == "lunch"


def test_transfer_custodial_signs_as_bank(net: Net) -> None:
    carol, dave = net.new_customer("aclb", "--no-key"), net.new_customer("aba")
    net.fund(carol, "KHR", "5000")
    out = net.ok_json(*transfer_args(carol, dave, "KHR", "1200"))
    assert out["status"] == "committed"
    assert signer_of(net, out["hash"]) == "admin@aclb"
    assert net.balance(carol, "KHR") == "3800" and net.balance(dave, "KHR") == "1200"


def test_transfer_as_bank_for_self_custody_customer(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("aba")
    net.fund(alice, "KHR", "100")
    out = net.ok_json(*transfer_args(alice, bob, "KHR", "40"), "--as", "admin@aba")
    assert signer_of(net, out["hash"]) == "admin@aba"
    assert net.balance(bob, "KHR") == "40"


def test_human_output_names_hash_and_height(net: Net) -> None:
    out = net.ok("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "1")
    assert out.startswith("committed tx ") and " at height " in out


def test_no_wait_then_tx_status(net: Net) -> None:
    out = net.ok_json("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "3", "--no-wait")
    assert out == {"hash": out["hash"], "status": "pending", "height": None}
    found = net.ok_json("tx", "status", out["hash"], "--wait", "20")
    assert set(found) >= STATUS_KEYS and found["status"] == "committed"
    assert isinstance(found["height"], int)
    assert net.ok("tx", "status", out["hash"]).startswith(f"tx {out['hash']}: committed")


def test_back_to_back_no_wait_txs_take_consecutive_nonces(net: Net) -> None:
    alice, bob = net.new_customer("wing"), net.new_customer("wing")
    net.fund(alice, "KHR", "10")
    hashes = [
        net.ok_json(*transfer_args(alice, bob, "KHR", "1"), "--no-wait")["hash"] for _ in range(3)
    ]
    for tx_hash in hashes:
        assert net.ok_json("tx", "status", tx_hash, "--wait", "20")["status"] == "committed"
    assert net.ok_json("balance", alice)["nonce"] == 3


class _FakeClient(NodeClient):
    def __init__(self, account: dict[str, Any]) -> None:
        super().__init__(Path("."), "http://unused")
        self.account = account

    def get_account(self, account: str) -> dict[str, Any]:
        return self.account


@pytest.mark.parametrize(
    ("committed", "pending", "expected"),
    # (3, [5]) -> 3: a tx signed past a gap would wait, queued, behind it; fill the gap
    [(0, [], 0), (3, [], 3), (3, [3, 4], 5), (3, [5], 3), (3, [3, 5], 4), (7, [2], 7)],
)
def test_next_nonce_is_past_committed_and_pending(
    committed: int, pending: list[int], expected: int
) -> None:
    opts = TxOptions(Path("."), None, None, None, "", False, True, 1.0, False)
    session = TxSession(opts)
    session.client = _FakeClient({"nonce": committed, "pending_nonces": pending})
    assert session.get_next_nonce("a@aba") == expected


def test_balance_json_shape(net: Net) -> None:
    found = net.ok_json("balance", "admin@nbc")
    assert set(found) >= BALANCE_KEYS
    assert set(found["balances"]) == {"KHR", "USD"}
    assert all(isinstance(v, str) for v in found["balances"].values())
    assert "." not in found["balances"]["KHR"] and found["balances"]["USD"][-3] == "."
    assert isinstance(found["nonce"], int) and isinstance(found["frozen"], bool)


def test_balance_human_table(net: Net) -> None:
    out = net.ok("balance", "admin@aba")
    assert "admin@aba" in out and "KHR" in out and "USD" in out and "next nonce" in out


def test_freeze_and_unfreeze(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    net.fund(alice, "USD", "1.00")
    assert net.ok_json("freeze", alice)["status"] == "committed"
    assert net.ok_json("balance", alice)["frozen"] is True
    assert net.ok_json("unfreeze", alice)["status"] == "committed"
    assert net.ok_json(*transfer_args(alice, bob, "USD", "1"))["status"] == "committed"


# Error cases.
def test_invalid_insufficient_funds(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    line = net.fails("insufficient_funds", *transfer_args(alice, bob, "USD", "1.00"))
    assert "rejected" in line


def test_invalid_insufficient_funds_json(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    result = net.run(*transfer_args(alice, bob, "USD", "1.00"), "--json")
    assert result.exit_code != 0
    out = json.loads(result.stdout)
    assert out["status"] == "rejected" and out["error"] == "insufficient_funds"
    assert out["height"] is None and set(out) >= STATUS_KEYS


def test_invalid_unknown_account(net: Net) -> None:
    ghost = net.new_account_name("wing", "ghost")
    net.fails("unknown_account", *transfer_args("admin@aba", ghost, "KHR", "1"))
    net.fails("unknown_account", "balance", ghost)


def test_invalid_frozen(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    net.fund(alice, "USD", "5.00")
    net.ok("freeze", alice)
    try:
        # self-custody: the node refuses a frozen signer at the door
        net.fails("account_frozen", *transfer_args(alice, bob, "USD", "1"))
        # custodial: the bank signs, execution refuses the frozen payer
        net.fails("account_frozen", *transfer_args(alice, bob, "USD", "1"), "--as", "admin@aba")
        net.fails("account_frozen", *transfer_args(bob, alice, "USD", "0.01"), "--as", "admin@wing")
    finally:
        net.ok("unfreeze", alice)


def test_invalid_permission_denied(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    net.fund(alice, "KHR", "10")
    net.fails("permission_denied", "issue", "--to", "admin@aba", "--asset", "KHR",
              "--amount", "1", "--as", "admin@aba")  # fmt: skip
    net.fails("permission_denied", *transfer_args(alice, bob, "KHR", "1"), "--as", "admin@wing")
    net.fails("permission_denied", "account", "create", net.new_account_name("aba"),
              "--as", "admin@wing")  # fmt: skip
    assert net.balance(alice, "KHR") == "10"


def test_invalid_node_unreachable(net: Net) -> None:
    dead = "http://127.0.0.1:9"
    net.fails("node_unreachable", "balance", "admin@aba", "--node", dead)
    net.fails("node_unreachable", "issue", "--to", "admin@aba", "--asset", "KHR",
              "--amount", "1", "--node", dead)  # fmt: skip


def test_invalid_node_url(net: Net) -> None:
    net.fails("bad_node_url", "balance", "admin@aba", "--node", "127.0.0.1:9")


@pytest.mark.parametrize(
    ("asset", "amount", "code"),
    [
        ("USD", "1.001", "invalid_amount"),
        ("KHR", "1.5", "invalid_amount"),
        ("USD", "0", "invalid_amount"),
        ("USD", "-1", "invalid_amount"),
        ("USD", "1e3", "invalid_amount"),
        ("USD", "ten", "invalid_amount"),
        ("KHR", "9" * 25, "amount_overflow"),
        ("EUR", "1", "unknown_asset"),
    ],
)
def test_invalid_amount(net: Net, asset: str, amount: str, code: str) -> None:
    before = net.ok_json("balance", "admin@aba")["nonce"]
    net.fails(code, *transfer_args("admin@aba", "admin@wing", asset, amount))
    # checked before anything is signed or sent
    assert net.ok_json("balance", "admin@aba")["nonce"] == before


def test_invalid_missing_key(net: Net) -> None:
    stranger = net.new_account_name("aba", "nokey")
    net.fails("key_not_found", *transfer_args("admin@aba", "admin@wing", "KHR", "1"),
              "--as", stranger)  # fmt: skip


def test_invalid_account_id(net: Net) -> None:
    net.fails("invalid_id", "account", "create", "Not An Id")


def test_invalid_unknown_tx(net: Net) -> None:
    net.fails("not_found", "tx", "status", "00" * 32)
    net.fails("bad_hash", "tx", "status", "xyz")


def test_real_process_prints_one_error_line(net: Net) -> None:
    """Through the installed entry point: one line on stderr, exit 1, no traceback."""
    env = {**os.environ, "BAKONG_HOME": str(net.home)}
    env.pop("BAKONG_NODE", None)
    args = transfer_args("admin@aba", "admin@wing", "KHR", "99999999999999999")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: insufficient_funds: tx ")


def test_observer_reports_a_failed_tx_rejected(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    # the accounts are committed on the node the CLI asked; the observer may be a block
    # behind (it would refuse the transfer as from an unknown account)
    observer = net.url("canadia")
    wait_for(
        lambda: net.run("balance", alice, "--node", observer).exit_code == 0,
        30,
        "the observer to know the new account",
    )
    args = [*transfer_args(alice, bob, "USD", "1.00"), "--json", "--timeout", "20"]
    result = net.run(*args, "--node", net.url("canadia"))
    tx_hash = json.loads(result.stdout)["hash"]
    # every validator has rejected it by now
    assert net.ok_json("tx", "status", tx_hash, "--node", net.url("nbc"))["status"] == "rejected"
    assert json.loads(result.stdout)["status"] == "rejected"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": "bad_nonce", "message": "used"}}, ("bad_nonce", "used")),
        ({"error": {"code": "x"}}, None),
        ({"error": "flat"}, None),
        ([], None),
        (None, None),
    ],
)
def test_error_envelope_is_read_in_one_place(body: Any, expected: Any) -> None:
    from cli.client import parse_error_body

    assert parse_error_body(body) == expected
