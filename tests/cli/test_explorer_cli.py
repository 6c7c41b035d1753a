"""`bakong explorer blocks|block|tx|account|follow` against a real testnet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cli.client import NodeClient
from tests.cli.conftest import Net

HEADER_KEYS = {"height", "hash", "time", "proposer", "txs"}
TX_KEYS = {"hash", "status", "height", "signer", "commands"}


def committed_issue(net: Net, amount: str = "1") -> dict[str, object]:
    out = net.ok_json("issue", "--to", "admin@aclb", "--asset", "KHR", "--amount", amount)
    assert out["status"] == "committed"
    return out


def test_basic_blocks_newest_first(net: Net) -> None:
    for _ in range(3):
        committed_issue(net)
    blocks = net.ok_json("explorer", "blocks", "--limit", "3")
    assert isinstance(blocks, list) and len(blocks) == 3
    assert all(set(b) >= HEADER_KEYS for b in blocks)
    heights = [b["height"] for b in blocks]
    assert heights == sorted(heights, reverse=True) and heights[0] - heights[2] == 2
    assert all(isinstance(b["txs"], int) and len(b["hash"]) == 64 for b in blocks)


def test_blocks_from_height_oldest_first(net: Net) -> None:
    committed_issue(net)
    blocks = net.ok_json("explorer", "blocks", "--from", "1", "--limit", "2")
    assert [b["height"] for b in blocks] == [1, 2]


def test_blocks_table(net: Net) -> None:
    out = net.ok("explorer", "blocks", "--limit", "2")
    assert "proposer" in out and "height" in out


def test_block_by_height_and_hash(net: Net) -> None:
    out = committed_issue(net, "7")
    by_height = net.ok_json("explorer", "block", str(out["height"]))
    by_hash = net.ok_json("explorer", "block", by_height["hash"])
    assert by_height == by_hash
    assert by_height["height"] == out["height"]
    assert out["hash"] in [tx["hash"] for tx in by_height["txs"]]
    signatures = by_height["commit"]["signatures"]
    # a commit certificate holds 2f+1 = 3 of the 4 validators' precommits
    names = {s["validator"] for s in signatures}
    assert len(signatures) >= 3 and names <= {"nbc", "aclb", "aba", "wing"}
    assert all(len(s["signature"]) == 128 for s in signatures)


def test_block_human_shows_txs_and_signers(net: Net) -> None:
    out = committed_issue(net, "8")
    text = net.ok("explorer", "block", str(out["height"]))
    assert f"block {out['height']}" in text
    assert "issue 8 KHR to admin@aclb" in text
    assert "signatures" in text and "validator" in text


def test_invalid_block_ref(net: Net) -> None:
    net.fails("invalid_argument", "explorer", "block", "tip")
    net.fails("not_found", "explorer", "block", "999999999")
    net.fails("not_found", "explorer", "block", "ab" * 32)


def test_tx_committed(net: Net) -> None:
    out = committed_issue(net, "9")
    found = net.ok_json("explorer", "tx", out["hash"])
    assert set(found) >= TX_KEYS
    assert found["status"] == "committed" and found["height"] == out["height"]
    assert found["signer"] == "admin@nbc"
    assert found["commands"] == [
        {"type": "issue", "to": "admin@aclb", "asset": "KHR", "amount": "9"}
    ]
    text = net.ok("explorer", "tx", out["hash"])
    assert "issue 9 KHR to admin@aclb" in text and "admin@nbc" in text


def test_tx_rejected(net: Net) -> None:
    result = net.run("transfer", "--from", "admin@aclb", "--to", "admin@aba", "--asset", "USD",
                     "--amount", "99999999999", "--json")  # fmt: skip
    rejected = json.loads(result.stdout)
    found = net.ok_json("explorer", "tx", rejected["hash"])
    assert set(found) >= TX_KEYS
    assert found["status"] == "rejected" and found["error"] == "insufficient_funds"
    assert found["height"] is None


def test_invalid_tx_unknown(net: Net) -> None:
    net.fails("not_found", "explorer", "tx", "11" * 32)


def test_account_history_newest_first_with_paging(net: Net) -> None:
    alice, bob = net.new_customer("aba"), net.new_customer("wing")
    net.fund(alice, "KHR", "100")
    hashes = []
    for amount in ("1", "2", "3"):
        args = ("--from", alice, "--to", bob, "--asset", "KHR", "--amount", amount)
        hashes.append(net.ok_json("transfer", *args)["hash"])
    page = net.ok_json("explorer", "account", alice, "--limit", "2")
    assert page["account"] == alice and page["balances"]["KHR"] == "94"
    assert page["nonce"] == 3 and page["frozen"] is False
    assert [t["hash"] for t in page["transactions"]] == [hashes[2], hashes[1]]
    assert page["transactions"][0]["commands"][0]["amount"] == "3"
    rest = net.ok_json("explorer", "account", alice, "--limit", "2", "--before", page["next"])
    # then the third transfer, the funding and the account's creation
    assert rest["transactions"][0]["hash"] == hashes[0]
    last = net.ok_json("explorer", "account", alice, "--limit", "10", "--before", rest["next"])
    assert [t["commands"][0]["type"] for t in last["transactions"]] == ["create_account"]
    assert last["next"] is None


def test_account_human(net: Net) -> None:
    text = net.ok("explorer", "account", "admin@nbc", "--limit", "2")
    assert "admin@nbc" in text and "newest first" in text


def test_invalid_account_paging_cursor(net: Net) -> None:
    net.fails("invalid_argument", "explorer", "account", "admin@nbc", "--before", "yesterday")


def test_invalid_account_unknown(net: Net) -> None:
    net.fails("unknown_account", "explorer", "account", net.new_account_name("aba", "nobody"))


def test_follow_prints_new_blocks(net: Net) -> None:
    env = {**os.environ, "BAKONG_HOME": str(net.home)}
    command = [sys.executable, "-m", "cli.main", "explorer", "follow", "--limit-blocks", "2"]
    with subprocess.Popen(
        [*command, "--json", "--interval", "0.1"], env=env, stdout=subprocess.PIPE, text=True
    ) as follower:
        try:
            # blocks commit only when there is something to commit
            for _ in range(40):
                committed_issue(net)
                if follower.poll() is not None:
                    break
            out, _ = follower.communicate(timeout=30)
        finally:
            follower.kill()
    assert follower.returncode == 0
    headers = [json.loads(line) for line in out.splitlines()]
    assert len(headers) == 2 and all(set(h) >= HEADER_KEYS for h in headers)
    assert headers[1]["height"] == headers[0]["height"] + 1


def test_follow_from_height_human(net: Net) -> None:
    out = committed_issue(net, "4")
    text = net.ok("explorer", "follow", "--from", str(out["height"]), "--limit-blocks", "1")
    lines = text.splitlines()
    assert lines[0].startswith(f"following {net.manifest.chain_id} at http://127.0.0.1:")
    assert lines[1].startswith(f"from height {out['height']} (chain at ")
    assert lines[2].startswith(f"block {out['height']} ")
    assert "admin@nbc: issue 4 KHR to admin@aclb" in text


def test_assets_endpoint(net: Net) -> None:
    assert NodeClient(net.home, None).get_assets() == {"KHR": 0, "USD": 2}


def test_fail_over_to_the_next_node(net: Net) -> None:
    """A node that does not answer is skipped; the first that answers serves the command."""
    client = NodeClient(net.home, None)
    client.urls.insert(0, "http://127.0.0.1:9")
    assert client.get_status()["chain_id"] == net.manifest.chain_id
    assert client.url == net.manifest.nodes[0].http_url
