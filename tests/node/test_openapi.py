"""Contract tests of the Bakong Open API on a real testnet: every endpoint's success
shape, every error code, the 50-item limit, tokens (verify once, renew, expiry, restart),
the envelope on malformed requests, and the deeplink page (escaped, no script)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger.commands import Transfer
from ledger.constants import TX_VERSION
from ledger.ids import AccountId
from ledger.khqr import KHQR, encode_khqr, khqr_md5
from ledger.tx import TxBody, sign_tx
from node.config import NodeConfig
from node.openapi import MAX_LIST
from tests.node.netutil import Net, http, running_testnet, wait_for

pytestmark = pytest.mark.slow

# two validators (nbc, aclb) and an observer (aba)
PAYER_BANK = "aclb"
MERCHANT = "admin@aba"
OBSERVER = "aba"
SHORT_TTL_MS = 3_000
CHECKS = (
    "check_transaction_by_md5",
    "check_transaction_by_md5_list",
    "check_transaction_by_hash",
    "check_transaction_by_hash_list",
    "check_transaction_by_short_hash",
    "check_transaction_by_instruction_ref",
    "check_transaction_by_external_ref",
)
ALL_PATHS = (
    "request_token",
    "verify",
    "renew_token",
    *CHECKS,
    "check_account_exist",
    "check_bakong_account",
    "generate_deeplink_by_qr",
)


def _configure(config: NodeConfig) -> NodeConfig:
    """The observer's tokens live 3 s (the expiry test); the validators' 10 minutes."""
    ttl = SHORT_TTL_MS if config.name == OBSERVER else 600_000
    return replace(config, openapi=replace(config.openapi, token_ttl_ms=ttl))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("openapi")
    with running_testnet(tmp, validators=2, observers=1, configure=_configure) as running:
        yield running


def api(
    net: Net, path: str, body: Any, token: str | None = None, node: str | None = None
) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{net.url(node or net.validators[0])}/v1/{path}"
    return http(url, raw, headers=headers)


def ok(net: Net, path: str, body: Any, token: str | None = None, **kw: Any) -> Any:
    status, reply = api(net, path, body, token, **kw)
    assert status == 200 and reply["responseCode"] == 0, (path, status, reply)
    assert reply["errorCode"] is None
    return reply["data"]


def refused(
    net: Net, path: str, body: Any, error_code: int, status: int = 200, **kw: Any
) -> dict[str, Any]:
    got, reply = api(net, path, body, **kw)
    assert (got, reply["responseCode"], reply["errorCode"]) == (status, 1, error_code), (
        path,
        got,
        reply,
    )
    assert reply["data"] is None and isinstance(reply["responseMessage"], str)
    return dict(reply)


_emails = iter(range(10**6))


def new_token(net: Net, node: str | None = None) -> str:
    email = f"dev{next(_emails)}_{time.time_ns()}@example.com"
    data = ok(net, "request_token", {"email": email, "organization": "Shop", "project": "POS"},
              node=node)  # fmt: skip
    return str(data["token"])


@pytest.fixture(scope="module")
def token(net: Net) -> str:
    return new_token(net)


def make_code(amount: int | None, currency: str = "KHR", name: str = "Wing Shop") -> str:
    now = int(time.time() * 1000)
    timestamps = {"created_ms": now, "expires_ms": now + 3_600_000} if amount else {}
    return encode_khqr(
        KHQR(AccountId(MERCHANT), name, "Phnom Penh", currency, amount=amount, **timestamps)
    )


def tamper(code: str) -> str:
    """The code with another last CRC digit (so never the code itself)."""
    return code[:-1] + ("1" if code[-1] == "0" else "0")


def next_nonce(net: Net) -> int:
    """The payer's next nonce, from the node (a rejected tx does not use one up)."""
    status, account = http(f"{net.url(net.validators[0])}/v1/accounts/admin@{PAYER_BANK}")
    assert status == 200, account
    return max([int(account["nonce"]) - 1, *account.get("pending_nonces", [])]) + 1


def pay(net: Net, transfer: Transfer) -> str:
    tx = net.sign(PAYER_BANK, (transfer,), nonce=next_nonce(net))
    status, reply = net.submit(net.validators[0], tx)
    assert status == 202, reply
    net.wait_committed(net.validators[0], [tx.hash.hex()])
    return tx.hash.hex()


def pay_code(net: Net, code: str, amount: int, currency: str = "KHR", ref: str = "") -> str:
    return pay(net, Transfer(f"admin@{PAYER_BANK}", MERCHANT, currency, amount, ref, code))


@pytest.fixture(scope="module")
def paid(net: Net) -> dict[str, str]:
    """A paid dynamic code, a twice-paid static code, a USD code, a referenced payment."""
    dynamic = make_code(15_000)
    static = make_code(None)
    usd = make_code(1250, "USD")
    out = {
        "dynamic": dynamic,
        "dynamic_hash": pay_code(net, dynamic, 15_000),
        "static": static,
        "static_hash": pay_code(net, static, 700),
        "usd": usd,
        "usd_hash": pay_code(net, usd, 1250, "USD"),
        "ref_hash": pay(net, Transfer(f"admin@{PAYER_BANK}", MERCHANT, "KHR", 42, "INV-77")),
    }
    pay_code(net, static, 800)
    return out


# Tokens.
def test_token_flows(net: Net) -> None:
    email = f"flow_{time.time_ns()}@Example.com"
    body = {"email": email, "organization": "Angkor Coffee", "project": "POS"}
    first = ok(net, "request_token", body)
    assert first["token"].startswith("bks_") and first["verificationCode"]
    assert first["expiresMs"] > time.time() * 1000
    # the same email (any case) again: registered already
    refused(net, "request_token", dict(body, email=email.upper()), 8)
    # the verification code works once
    verified = ok(net, "verify", {"code": first["verificationCode"]})
    refused(net, "verify", {"code": first["verificationCode"]}, 6, 401)
    refused(net, "verify", {"code": "bkv_guess"}, 6, 401)
    renewed = ok(net, "renew_token", {"email": email})
    refused(net, "renew_token", {"email": "nobody@example.com"}, 10)
    tokens = {first["token"], verified["token"], renewed["token"]}
    assert len(tokens) == 3
    for each in tokens:
        refused(net, "check_transaction_by_md5", {"md5": "0" * 32}, 1, token=each)


def test_tokens_survive_restart(net: Net) -> None:
    token = new_token(net)
    refused(net, "check_transaction_by_md5", {"md5": "0" * 32}, 1, token=token)
    net.kill(net.validators[0])
    net.up()
    refused(net, "check_transaction_by_md5", {"md5": "0" * 32}, 1, token=token)


def test_invalid_token_expires(net: Net) -> None:
    observer = OBSERVER
    token = new_token(net, node=observer)
    refused(net, "check_transaction_by_md5", {"md5": "0" * 32}, 1, token=token, node=observer)

    def expired() -> bool:
        status, reply = api(net, "check_transaction_by_md5", {"md5": "0" * 32}, token, observer)
        return status == 401 and reply["errorCode"] == 6

    wait_for(expired, SHORT_TTL_MS / 1000 + 30, "the token to expire")
    # another node never issued it (tokens are the issuing node's)
    refused(net, "check_transaction_by_md5", {"md5": "0" * 32}, 6, 401, token=token)


@pytest.mark.parametrize("path", CHECKS)
def test_invalid_checks_need_a_token(net: Net, path: str) -> None:
    body: Any = [] if path.endswith("_list") else {"md5": "0" * 32}
    refused(net, path, body, 6, 401)
    refused(net, path, body, 6, 401, token="bks_not-a-token")
    got, reply = http(f"{net.url(net.validators[0])}/v1/{path}", json.dumps(body).encode(),
                      headers={"Authorization": "Basic eDp5"})  # fmt: skip
    assert (got, reply["errorCode"]) == (401, 6)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_invalid_malformed_json(net: Net, path: str, token: str) -> None:
    for raw in (b"{", b"\xff\xfe", b"[" * 100_000, b"x" * (65 * 1024)):
        refused(net, path, raw, 5, 400, token=token)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("request_token", {"email": "a@b.c", "organization": "O"}),
        ("request_token", {"email": "not an email", "organization": "O", "project": "P"}),
        ("request_token", {"email": "a@b.c", "organization": 5, "project": "P"}),
        ("verify", {}),
        ("renew_token", {"mail": "a@b.c"}),
        ("check_transaction_by_md5", {}),
        ("check_transaction_by_md5", ["0" * 32]),
        ("check_transaction_by_md5_list", {"md5": "0" * 32}),
        ("check_transaction_by_md5_list", ["0" * 32, 5]),
        ("check_transaction_by_hash", {"md5": "x"}),
        ("check_transaction_by_hash_list", "abc"),
        ("check_transaction_by_short_hash", {"hash": "abcdef12", "currency": "KHR"}),
        ("check_transaction_by_instruction_ref", {"reference": "x"}),
        ("check_account_exist", {"account": "admin@wing"}),
        ("generate_deeplink_by_qr", {"code": "x"}),
    ],
)
def test_invalid_missing_fields(net: Net, path: str, body: Any, token: str) -> None:
    refused(net, path, body, 5, 400, token=token)


# Transaction checks.
def test_check_by_md5(net: Net, token: str, paid: dict[str, str]) -> None:
    md5 = khqr_md5(paid["dynamic"])
    data = ok(net, "check_transaction_by_md5", {"md5": md5}, token)
    assert data["hash"] == paid["dynamic_hash"]
    assert (data["fromAccountId"], data["toAccountId"]) == (f"admin@{PAYER_BANK}", MERCHANT)
    assert (data["currency"], data["amount"]) == ("KHR", 15000)
    assert isinstance(data["amount"], int)
    assert data["acknowledgedDateMs"] >= data["createdDateMs"] > 1_700_000_000_000
    assert data["md5"] == md5 and data["receiverBank"]
    for key in ("description", "externalRef", "instructionRef", "trackingStatus"):
        assert key in data
    # any case of the md5
    assert ok(net, "check_transaction_by_md5", {"md5": md5.upper()}, token) == data
    # the observer answers the same
    assert ok(net, "check_transaction_by_md5", {"md5": md5}, token=new_token(net, OBSERVER),
              node=OBSERVER) == data  # fmt: skip


def test_invalid_check_by_md5(net: Net, token: str, paid: dict[str, str]) -> None:
    refused(net, "check_transaction_by_md5", {"md5": khqr_md5("never paid")}, 1, token=token)
    refused(net, "check_transaction_by_md5", {"md5": "not hex"}, 1, token=token)
    # a static code's md5 names many payments: not supported, as at NBC
    refused(net, "check_transaction_by_md5", {"md5": khqr_md5(paid["static"])}, 2, token=token)


def test_check_by_md5_list(net: Net, token: str, paid: dict[str, str]) -> None:
    md5s = [khqr_md5(paid["dynamic"]), khqr_md5("never paid"), khqr_md5(paid["static"])]
    items = ok(net, "check_transaction_by_md5_list", md5s, token)
    assert [(i["md5"], i["status"]) for i in items] == [
        (md5s[0], "SUCCESS"),
        (md5s[1], "NOT_FOUND"),
        (md5s[2], "NOT_FOUND"),
    ]
    assert items[0]["data"]["hash"] == paid["dynamic_hash"]
    assert items[1]["data"] is None and items[1]["message"]
    assert ok(net, "check_transaction_by_md5_list", [], token) == []
    assert len(ok(net, "check_transaction_by_md5_list", md5s[:1] * MAX_LIST, token)) == MAX_LIST
    refused(net, "check_transaction_by_md5_list", md5s[:1] * (MAX_LIST + 1), 5, 400, token=token)


def test_check_by_hash(net: Net, token: str, paid: dict[str, str]) -> None:
    data = ok(net, "check_transaction_by_hash", {"hash": paid["usd_hash"]}, token)
    assert (data["hash"], data["currency"], data["amount"]) == (paid["usd_hash"], "USD", 12.5)
    items = ok(net, "check_transaction_by_hash_list", [paid["usd_hash"], "ab" * 32], token)
    assert [i["status"] for i in items] == ["SUCCESS", "NOT_FOUND"]
    refused(net, "check_transaction_by_hash_list", ["ab" * 32] * (MAX_LIST + 1), 5, 400,
            token=token)  # fmt: skip


def test_usd_amount_is_an_exact_json_number(net: Net, token: str, paid: dict[str, str]) -> None:
    request = urllib.request.Request(
        f"{net.url(net.validators[0])}/v1/check_transaction_by_hash",
        data=json.dumps({"hash": paid["usd_hash"]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    assert re.search(r'"amount": 12\.5[,}]', text), text


def test_invalid_check_by_hash_failed_and_unknown(
    net: Net, token: str, paid: dict[str, str]
) -> None:
    refused(net, "check_transaction_by_hash", {"hash": "ab" * 32}, 1, token=token)
    refused(net, "check_transaction_by_hash", {"hash": "xyz"}, 1, token=token)
    # a second payment of the paid dynamic code: admitted, then rejected already_paid
    again = net.sign(
        PAYER_BANK,
        (Transfer(f"admin@{PAYER_BANK}", MERCHANT, "KHR", 15_000, "", paid["dynamic"]),),
        nonce=next_nonce(net),
    )
    assert net.submit(net.validators[0], again)[0] == 202
    wait_for(
        lambda: (
            (net.tx_status(net.validators[0], again.hash.hex(), 1000) or {}).get("status")
            == "rejected"
        ),
        60,
        "the second payment rejected",
    )
    refused(net, "check_transaction_by_hash", {"hash": again.hash.hex()}, 3, token=token)


def test_check_by_short_hash(net: Net, token: str, paid: dict[str, str]) -> None:
    short = paid["usd_hash"][:8]
    body = {"hash": short, "amount": 12.5, "currency": "USD"}
    assert ok(net, "check_transaction_by_short_hash", body, token)["hash"] == paid["usd_hash"]
    assert ok(net, "check_transaction_by_short_hash", dict(body, amount=12.50), token)
    khr = {"hash": paid["dynamic_hash"][:8], "amount": 15000, "currency": "KHR"}
    assert ok(net, "check_transaction_by_short_hash", khr, token)["hash"] == paid["dynamic_hash"]
    for wrong in (
        dict(body, amount=12.51),
        dict(body, amount=12.505),
        dict(body, amount=-12.5),
        dict(body, amount="12.5"),
        dict(body, currency="KHR"),
        dict(body, currency="EUR"),
        dict(body, hash=short[:7]),
        dict(body, hash="zzzzzzzz"),
    ):
        refused(net, "check_transaction_by_short_hash", wrong, 1, token=token)


@pytest.mark.parametrize(
    "path", ["check_transaction_by_instruction_ref", "check_transaction_by_external_ref"]
)
def test_check_by_reference(net: Net, token: str, paid: dict[str, str], path: str) -> None:
    data = ok(net, path, {"ref": "INV-77"}, token)
    assert (data["hash"], data["amount"], data["externalRef"]) == (paid["ref_hash"], 42, "INV-77")
    refused(net, path, {"ref": "INV-78"}, 1, token=token)


# Accounts and deeplinks (no token needed).
@pytest.mark.parametrize("path", ["check_account_exist", "check_bakong_account"])
def test_check_account_exist(net: Net, path: str) -> None:
    assert ok(net, path, {"accountId": MERCHANT}) is None
    refused(net, path, {"accountId": "nobody@aba"}, 11)
    for bad in ("not an id", "Admin@Wing", "", 5):
        refused(net, path, {"accountId": bad}, 12)


def test_deeplink(net: Net, paid: dict[str, str]) -> None:
    body = {
        "qr": paid["dynamic"],
        "sourceInfo": {
            "appIconUrl": "https://shop.example/icon.png",
            "appName": "<b>Shop</b>",
            "appDeepLinkCallback": "shopapp://done?x=1&y=2",
        },
    }
    link = ok(net, "generate_deeplink_by_qr", body)["shortLink"]
    assert link.startswith(net.url(net.validators[0]) + "/khqr/")
    with urllib.request.urlopen(link, timeout=10) as response:
        page = response.read().decode()
        headers = response.headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "Wing Shop" in page and "paid" in page and khqr_md5(paid["dynamic"]) in page
    assert "&lt;b&gt;Shop&lt;/b&gt;" in page and "<b>Shop</b>" not in page
    assert 'href="shopapp://done?x=1&amp;y=2"' in page and "<svg" in page
    assert "<script" not in page


def test_deeplink_escapes_what_the_code_says(net: Net) -> None:
    code = make_code(500, name="<script>x</script>")
    link = ok(net, "generate_deeplink_by_qr", {"qr": code})["shortLink"]
    with urllib.request.urlopen(link, timeout=10) as response:
        page = response.read().decode()
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "waiting for payment" in page


def test_invalid_deeplink(net: Net, paid: dict[str, str]) -> None:
    refused(net, "generate_deeplink_by_qr", {"qr": "not a code"}, 4)
    refused(net, "generate_deeplink_by_qr", {"qr": tamper(paid["dynamic"])}, 4)
    for info in (
        {"appDeepLinkCallback": "javascript:alert(1)"},
        {"appIconUrl": "data:text/html,x"},
        {"appIconUrl": "x" * 600},
        {"appName": 5},
        "not an object",
    ):
        refused(net, "generate_deeplink_by_qr", {"qr": paid["dynamic"], "sourceInfo": info}, 4)
    status, _ = http(f"{net.url(net.validators[0])}/khqr/nosuchlink")
    assert status == 404


def test_invalid_get_on_an_open_api_path(net: Net) -> None:
    status, reply = http(f"{net.url(net.validators[0])}/v1/check_transaction_by_md5")
    assert status == 405 and reply["error"]["code"] == "method_not_allowed"


def test_existing_api_unchanged(net: Net, paid: dict[str, str]) -> None:
    md5 = khqr_md5(paid["dynamic"])
    status, body = http(f"{net.url(net.validators[0])}/v1/transactions?khqr_md5={md5}")
    assert status == 200 and body["transactions"][0]["amount"] == "15000"


def test_env_is_documented() -> None:
    """docs/open-api.md has a curl example for every endpoint."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "open-api.md").read_text()
    for path in ALL_PATHS:
        assert f"/v1/{path}" in doc, path


# The review's attacks (issue 13).
def test_invalid_huge_amounts_cost_nothing(net: Net, token: str, paid: dict[str, str]) -> None:
    """An exponent of a million digits is not a number of minor units: answered at once
    as not found (it once took the event loop for 26 s), and never a 500."""
    prefix = paid["dynamic_hash"][:8]
    for amount in (b"1e700000", b"1e999999999", b"-1e700000", b"1e-700000", b"9" * 4000):
        raw = b'{"hash": "%s", "currency": "KHR", "amount": %s}' % (prefix.encode(), amount)
        got = refused(net, "check_transaction_by_short_hash", raw, 1, token=token)
        assert got["errorCode"] == 1
    # a node that was asked still commits and answers
    assert ok(net, "check_transaction_by_hash", {"hash": paid["dynamic_hash"]}, token)


def test_text_never_turns_into_a_number(net: Net, token: str) -> None:
    """A payer's memo or reference that looks like the envelope's number marker stays text."""
    code = make_code(321)
    transfer = Transfer(f"admin@{PAYER_BANK}", MERCHANT, "KHR", 321, "\u0000num:7\u0000", code)
    body = TxBody(
        TX_VERSION, net.chain_id, f"admin@{PAYER_BANK}", next_nonce(net),
        int(time.time() * 1000), (transfer,), "\u0000num:42\u0000",
    )  # fmt: skip
    tx = sign_tx(body, net.operator_key(PAYER_BANK))
    assert net.submit(net.validators[0], tx)[0] == 202
    net.wait_committed(net.validators[0], [tx.hash.hex()])
    data = ok(net, "check_transaction_by_md5", {"md5": khqr_md5(code)}, token)
    assert data["description"] == "\u0000num:42\u0000"
    assert data["externalRef"] == "\u0000num:7\u0000" and data["amount"] == 321


def test_renewals_never_revoke_a_token(net: Net) -> None:
    """Anyone who knows an email may renew (the sandbox mails nothing): renewals must not
    log the developer out. Beyond 8 live tokens they are refused instead."""
    email = f"victim_{time.time_ns()}@example.com"
    first = ok(net, "request_token", {"email": email, "organization": "O", "project": "P"})
    for _ in range(7):
        ok(net, "renew_token", {"email": email})
    refused(net, "renew_token", {"email": email}, 9)
    refused(net, "check_transaction_by_md5", {"md5": "0" * 32}, 1, token=first["token"])


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("check_transaction_by_external_ref", {"ref": "\U0001f600" * 64}, 1),
        ("check_transaction_by_external_ref", {"ref": "\ud800"}, 1),
        ("check_transaction_by_md5", {"md5": "\ud800"}, 1),
        ("check_transaction_by_hash", {"hash": "\U0001f600" * 16}, 1),
        ("generate_deeplink_by_qr", {"qr": "x", "sourceInfo": {"appName": "\ud800"}}, 4),
    ],
)
def test_invalid_odd_text_is_an_answer_not_a_crash(
    net: Net, token: str, paid: dict[str, str], path: str, body: dict[str, Any], code: int
) -> None:
    if path == "generate_deeplink_by_qr":
        body = dict(body, qr=paid["dynamic"])
    refused(net, path, body, code, token=token)


def test_invalid_deeplink_schemes(net: Net, paid: dict[str, str]) -> None:
    for info in (
        {"appDeepLinkCallback": "ms-msdt:/id PCWDiagnostic"},
        {"appDeepLinkCallback": "search-ms:query=x"},
        {"appIconUrl": "ftp://example.com/icon.png"},
        {"appIconUrl": "shopapp://icon"},
    ):
        refused(net, "generate_deeplink_by_qr", {"qr": paid["dynamic"], "sourceInfo": info}, 4)


def test_short_link_ignores_the_host_header(net: Net, paid: dict[str, str]) -> None:
    url = f"{net.url(net.validators[0])}/v1/generate_deeplink_by_qr"
    status, reply = http(url, json.dumps({"qr": paid["dynamic"]}).encode(),
                         headers={"Host": "evil.example:443"})  # fmt: skip
    assert status == 200, reply
    assert reply["data"]["shortLink"].startswith(net.url(net.validators[0]) + "/khqr/")
