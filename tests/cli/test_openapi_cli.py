"""The merchant flow end to end with the CLI and the Open API: `khqr new` -> `pay` ->
`check_transaction_by_md5`; and `bakong openapi token`."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from tests.cli.conftest import Net


def check(net: Net, path: str, body: Any, token: str | None = None) -> dict[str, Any]:
    """POST an Open API check as a merchant's backend would (HTTP 200 answers only)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"{net.validator_urls[0]}/v1/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        out: dict[str, Any] = json.loads(response.read())
    return out


def test_merchant_flow(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = net.new_customer("aba")
    net.fund(payer, "USD", "20.00")
    email = f"shop_{time.time_ns()}@example.com"
    token = net.ok("openapi", "token", "--email", email).strip()
    assert token.startswith("bks_")
    code = net.ok_json("khqr", "new", merchant, "--amount", "12.50", "--asset", "USD")
    # not paid yet
    waiting = check(net, "check_transaction_by_md5", {"md5": code["md5"]}, token)
    assert (waiting["responseCode"], waiting["errorCode"], waiting["data"]) == (1, 1, None)
    paid = net.ok_json("pay", code["qr"], "--from", payer)
    assert paid["status"] == "committed"
    found = check(net, "check_transaction_by_md5", {"md5": code["md5"]}, token)
    assert (found["responseCode"], found["errorCode"]) == (0, None)
    data = found["data"]
    assert (data["hash"], data["fromAccountId"], data["toAccountId"]) == (
        paid["hash"],
        payer,
        merchant,
    )
    assert (data["currency"], data["amount"]) == ("USD", 12.5)
    # the merchant's bank account check needs no token
    exists = check(net, "check_account_exist", {"accountId": merchant})
    assert exists["responseCode"] == 0


def test_openapi_token_renews(net: Net) -> None:
    email = f"dev_{time.time_ns()}@example.com"
    first = net.ok_json("openapi", "token", "--email", email)
    assert first["verification_code"] and first["token"].startswith("bks_")
    again = net.ok_json("openapi", "token", "--email", email)
    assert again["verification_code"] is None and again["token"] != first["token"]
    assert again["expires_ms"] > time.time() * 1000


def test_invalid_openapi_token_bad_email(net: Net) -> None:
    line = net.fails("openapi_refused", "openapi", "token", "--email", "not an email")
    assert "errorCode 5" in line and "email" in line
