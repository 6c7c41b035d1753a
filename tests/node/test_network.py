"""Integration: a real 4-validator + 1-observer testnet of node processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.commands import Transfer
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxSignature
from node.keyfile import read_key_file
from node.p2p import MessageRouter, PeerManager
from tests.node.netutil import Net, http, running_testnet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("net")) as running:
        yield running


def test_commit_and_converge(net: Net) -> None:
    txs = [net.transfer("aclb", "aba", 5) for _ in range(20)]
    txs += [net.issue("wing", 7) for _ in range(20)]
    for i, tx in enumerate(txs):
        code, body = net.submit(net.names[i % len(net.names)], tx)
        assert code == 202, body
        assert body["hash"] == tx.hash.hex()
    net.wait_committed("canadia", [tx.hash.hex() for tx in txs])
    status = net.wait_converged()
    assert status["height"] >= 1
    observer = net.status("canadia")
    assert observer is not None and observer["validator"] is False
    code, account = http(net.url("canadia") + "/v1/accounts/admin@aba")
    assert code == 200 and account["balances"]["KHR"] == str(10_000_000_000 + 100)


def test_idle_chain_does_not_grow(net: Net) -> None:
    start = net.wait_converged()
    tx = net.issue("aba", 1)
    assert net.submit("nbc", tx)[0] == 202
    net.wait_committed("nbc", [tx.hash.hex()])
    settled = net.wait_converged()
    assert settled["height"] > start["height"]
    # Nothing to do: the next status poll rounds must not add blocks.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert net.status("nbc")["height"] == settled["height"]
        time.sleep(0.2)


def _bad(net: Net, path: str, body: bytes, content_type: str = "application/json") -> tuple:
    code, reply = http(net.url("aclb") + path, body, content_type)
    assert 400 <= code < 500, (code, reply)
    assert isinstance(reply, dict) and set(reply["error"]) == {"code", "message"}
    return code, reply["error"]["code"]


def test_bad_client_input_is_refused_and_changes_nothing(net: Net) -> None:
    before = net.wait_converged()
    assert _bad(net, "/v1/transactions", b"\xff\x00garbage", "application/msgpack")[1] in {
        "malformed",
        "truncated",
        "wrong_type",
        "trailing_bytes",
    }
    assert _bad(net, "/v1/transactions", b"{not json")[1] == "bad_json"
    assert _bad(net, "/v1/transactions", b'{"tx": "zz"}')[1] == "bad_hex"
    assert _bad(net, "/v1/transactions", b"[]")[1] == "bad_json"
    # A forged signature under admin@aclb's public key.
    next_nonce = net.nonces.get("admin@aclb", 0)
    good = net.sign("aclb", (Transfer("admin@aclb", "admin@aba", "KHR", 1),), nonce=next_nonce)
    forged_sig = PrivateKey.generate().sign_root(b"\0" * 32)
    forged = SignedTx(good.body, (TxSignature(good.signatures[0].public_key, forged_sig),))
    raw = forged.encode().hex()
    assert _bad(net, "/v1/transactions", json.dumps({"tx": raw}).encode())[1] == "bad_signature"
    # Wrong chain id.
    wrong = net.sign(
        "aclb", (Transfer("admin@aclb", "admin@aba", "KHR", 1),), nonce=0, chain_id="other-chain"
    )
    assert (
        _bad(net, "/v1/transactions", json.dumps({"tx": wrong.encode().hex()}).encode())[1]
        == "wrong_chain"
    )
    # A replayed (already committed) tx.
    tx = net.issue("aclb", 3)
    assert net.submit("aclb", tx)[0] == 202
    net.wait_committed("aclb", [tx.hash.hex()])
    code, body = net.submit("aba", tx)
    assert code == 409 and body["error"]["code"] == "already_committed"
    # Oversized body.
    assert _bad(net, "/v1/transactions", b"{" + b" " * (9 * 1024 * 1024) + b"}")[0] == 413
    # Unknown account, bad hash.
    code, body = http(net.url("aclb") + "/v1/accounts/nobody@aclb")
    assert code == 404 and body["error"]["code"] == "unknown_account"
    code, body = http(net.url("aclb") + "/v1/transactions/xyz")
    assert code == 400 and body["error"]["code"] == "bad_hash"
    after = net.wait_converged()
    assert after["height"] == before["height"] + 1  # only the replayed issue committed
    assert net.status("aclb") is not None


def test_metrics_parse(net: Net) -> None:
    families = {f.name: f for f in text_string_to_metric_families(net.metrics("nbc"))}
    assert families["bakong_height"].samples[0].value >= 1
    assert "bakong_commit_latency_seconds" in families
    assert "bakong_rejected_txs" in families or "bakong_rejected_txs_total" in families


def test_bank_transfer_endpoint(net: Net) -> None:
    token = _api_token(net, "aclb")
    payload = {
        "from": "admin@aclb",
        "to": "admin@wing",
        "asset": "KHR",
        "amount": "25",
        "wait_ms": 20000,
    }
    code, body = http(net.url("aclb") + "/v1/bank/transfers", json.dumps(payload).encode())
    assert code == 401 and body["error"]["code"] == "unauthorized"
    headers = {"Authorization": f"Bearer {token}"}
    other = dict(payload, **{"from": "admin@wing", "to": "admin@aclb"})
    code, body = http(
        net.url("aclb") + "/v1/bank/transfers", json.dumps(other).encode(), headers=headers
    )
    assert code == 403 and body["error"]["code"] == "permission_denied"
    code, body = http(
        net.url("aclb") + "/v1/bank/transfers",
        json.dumps(payload).encode(),
        headers=headers,
        timeout=30,
    )
    assert code == 202 and body["status"] == "committed", body


def _api_token(net: Net, name: str) -> str:
    for line in (net.node_dir(name) / "node.toml").read_text().splitlines():
        if line.startswith("api_token"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no api token")


def _peer_manager(net: Net, key: PrivateKey, target: str, router: MessageRouter) -> PeerManager:
    port = net.node(target).p2p_port
    return PeerManager(
        key, net.chain_id, "127.0.0.1", 0, [("127.0.0.1", port)], lambda _key: True, router
    )


def test_unregistered_peer_is_refused(net: Net) -> None:
    async def attempt() -> list[bytes]:
        manager = _peer_manager(net, PrivateKey.generate(), "nbc", MessageRouter())
        await manager.start()
        try:
            await asyncio.sleep(1.0)
            return manager.connected_peers()
        finally:
            await manager.stop()

    assert asyncio.run(attempt()) == []
    assert "refused_not_admitted" in net.metrics("nbc")


def test_malformed_frames_from_registered_peer_are_dropped(net: Net) -> None:
    # Borrow the observer's registered key while the observer itself is down.
    key = read_key_file(net.node_dir("canadia") / "node_key.json")
    net.kill("canadia")

    async def spam() -> bool:
        manager = _peer_manager(net, key, "wing", MessageRouter())
        await manager.start()
        try:
            wait_until = time.monotonic() + 10
            while not manager.connected_peers() and time.monotonic() < wait_until:
                await asyncio.sleep(0.05)
            peer = manager.connected_peers()[0]
            for kind, payload in ((17, [b"junk"]), (18, b"\x00"), (16, ["x"]), (21, 5)):
                manager.send(peer, kind, payload)
            await asyncio.sleep(0.5)
            return True
        finally:
            await manager.stop()

    assert asyncio.run(spam())
    dropped = [
        line
        for line in net.metrics("wing").splitlines()
        if 'kind="dropped_malformed_consensus"' in line
    ]
    assert dropped and float(dropped[0].split()[-1]) >= 1
    net.up()
    tx = net.issue("wing", 1)
    assert net.submit("wing", tx)[0] == 202
    net.wait_committed("wing", [tx.hash.hex()])
    net.wait_converged()
