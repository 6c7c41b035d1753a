"""Integration: the HTTP API against bad numbers and bad bodies, and the back office's
`POST /v1/bank/transfers` (checks before signing, Idempotency-Key) on a real testnet."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ledger.ids import AccountId
from ledger.khqr import KHQR, encode_khqr, khqr_md5
from tests.node.netutil import Net, http, running_testnet

pytestmark = pytest.mark.slow

BANK = "aclb"
PAYER = "admin@aclb"
PAYEE = "admin@wing"
BAD_NUMBERS = [
    "",
    "²",
    "١٢",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1e3",
    str(2**63),
    "99999999999999999999999",
    "9" * 5000,
]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("api")) as running:
        tx = running.issue("wing", 1)
        assert running.submit("nbc", tx)[0] == 202
        running.wait_committed(BANK, [tx.hash.hex()])
        yield running


def _get(net: Net, path: str) -> tuple[int, Any]:
    return http(net.url(BANK) + path)


def _refused(reply: tuple[int, Any]) -> str:
    code, body = reply
    assert 400 <= code < 500, (code, body)
    assert isinstance(body, dict) and set(body["error"]) == {"code", "message"}, body
    return str(body["error"]["code"])


def _numeric_routes(net: Net, bad: str) -> list[str]:
    q = urllib.parse.quote(bad, safe="")
    tx_hash = "00" * 32
    return [
        f"/v1/blocks?limit={q}",
        f"/v1/blocks?from={q}",
        f"/v1/blocks?from=1&limit={q}",
        f"/v1/transactions/{tx_hash}?wait_ms={q}",
        f"/v1/transactions?reference=bill-1&limit={q}",
        f"/v1/accounts/{PAYER}/transactions?limit={q}",
        f"/v1/accounts/{PAYER}/transactions?before={q}:1",
        f"/v1/accounts/{PAYER}/transactions?before=1:{q}",
        *([f"/v1/blocks/{q}"] if bad else []),  # an empty path segment is another route
    ]


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=lambda b: repr(b[:12]))
def test_bad_numbers_are_bad_parameter(net: Net, bad: str) -> None:
    for path in _numeric_routes(net, bad):
        code, body = _get(net, path)
        assert code == 400, (path[:80], code, body)
        assert body["error"]["code"] == "bad_parameter", (path[:80], body)


def test_numbers_still_work(net: Net) -> None:
    code, page = _get(net, "/v1/blocks?limit=12")
    assert code == 200 and 1 <= len(page["blocks"]) <= 12
    code, one = _get(net, "/v1/blocks?from=1&limit=1")
    assert code == 200 and one["blocks"][0]["height"] == 1
    block_hash = one["blocks"][0]["hash"]
    assert _get(net, "/v1/blocks/1")[1]["height"] == 1
    assert _get(net, "/v1/blocks/0001")[1]["height"] == 1
    assert _get(net, f"/v1/blocks/{block_hash}")[1]["height"] == 1
    assert _get(net, f"/v1/blocks/{2**63 - 1}")[0] == 404
    assert _get(net, f"/v1/accounts/{PAYER}/transactions?before={2**63 - 1}:{2**32 - 1}")[0] == 200
    assert _refused(_get(net, f"/v1/accounts/{PAYER}/transactions?before=1:{2**32}")) == (
        "bad_parameter"
    )
    assert _refused(_get(net, "/v1/accounts/admin@aclb/transactions?before=5")) == "bad_parameter"


def test_arabic_indic_limit_is_refused(net: Net) -> None:
    code, body = _get(net, "/v1/blocks?limit=" + urllib.parse.quote("١٢"))
    assert code == 400 and body["error"]["code"] == "bad_parameter"
    assert "limit" in body["error"]["message"]


def test_bad_hashes_and_ids(net: Net) -> None:
    assert _refused(_get(net, "/v1/blocks/" + "z" * 64)) == "bad_hash"
    assert _refused(_get(net, "/v1/transactions/" + "g" * 64)) == "bad_hash"
    # 8-63 hex digits are a prefix (issue 14): one that names nothing is not found
    assert _refused(_get(net, "/v1/transactions/" + "0" * 63)) == "not_found"
    assert _refused(_get(net, "/v1/transactions/" + "0" * 7)) == "bad_hash"
    assert _refused(_get(net, "/v1/transactions/" + "00" * 31 + "%2000")) == "bad_hash"
    assert _refused(_get(net, "/v1/accounts/%ED%A0%80@aclb")) == "invalid_id"
    assert _refused(_get(net, "/v1/fx/rates?operator=%FF")) == "invalid_id"
    # Bytes that are not UTF-8 arrive as U+FFFD: a reference that matches nothing.
    assert _get(net, "/v1/transactions?reference=%ED%A0%80") == (200, {"transactions": []})


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[]", "application/json"),
        (b'"tx"', "application/json"),
        (b"null", "application/json"),
        (b"[" * 100_000, "application/json"),
        (b'{"tx": ' + b"1" * 5000 + b"}", "application/json"),
        (b'{"tx": "\xff"}', "application/json"),
    ],
    ids=["list", "string", "null", "deep", "huge-int", "not-utf8"],
)
def test_bad_json_bodies(net: Net, body: bytes, content_type: str) -> None:
    for path in ("/v1/transactions", "/v1/transactions/batch"):
        reply = http(net.url(BANK) + path, body, content_type)
        assert _refused(reply) == "bad_json", (path, reply)
    assert _refused(_transfer(net, raw=body, content_type=content_type)[:2]) == "bad_json"


def test_bogus_charset_is_read_as_utf8(net: Net) -> None:
    content_type = "application/json; charset=no-such-charset"
    reply = http(net.url(BANK) + "/v1/transactions", b'{"tx": "zz"}', content_type)
    assert _refused(reply) == "bad_hex"
    raw = json.dumps(_payment(wait_ms="5000")).encode()
    assert _refused(_transfer(net, raw=raw, content_type=content_type)[:2]) == "bad_parameter"


# The back office.
def _api_token(net: Net) -> str:
    for line in (net.node_dir(BANK) / "node.toml").read_text().splitlines():
        if line.startswith("api_token"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no api token")


def _transfer(
    net: Net,
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    token: str | None = None,
    node: str = BANK,
) -> tuple[int, Any, dict[str, str]]:
    body = raw if raw is not None else json.dumps(payload).encode()
    request = urllib.request.Request(net.url(node) + "/v1/bank/transfers", data=body, method="POST")
    request.add_header("Content-Type", content_type)
    request.add_header("Authorization", f"Bearer {token or _api_token(net)}")
    if key is not None:
        request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            status, data, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, data, headers = exc.code, exc.read(), dict(exc.headers)
    return status, json.loads(data), headers


def _payment(amount: str = "25", **extra: Any) -> dict[str, Any]:
    return {"from": PAYER, "to": PAYEE, "asset": "KHR", "amount": amount, **extra}


def _account(net: Net, account: str = PAYER) -> dict[str, Any]:
    code, body = http(f"{net.url(BANK)}/v1/accounts/{account}")
    assert code == 200, body
    return dict(body)


def _settle(net: Net) -> dict[str, Any]:
    """Move the chain on (commit an unrelated tx), then the payer's account as BANK sees it."""
    tx = net.issue("aba", 1)
    assert net.submit("nbc", tx)[0] == 202
    net.wait_committed(BANK, [tx.hash.hex()])
    return _account(net)


def _paid_nothing(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["balances"] == before["balances"]
    assert after["nonce"] == before["nonce"]  # no tx signed by the payer committed
    assert after["pending_nonces"] == []  # and none is waiting


def _code(amount: int | None = 25, account: str = PAYEE) -> str:
    """A KHQR code of `account` for `amount` riel (static with None), valid for a day."""
    now = int(time.time() * 1000)
    timestamps = {"created_ms": now, "expires_ms": now + 86_400_000} if amount else {}
    return encode_khqr(
        KHQR(AccountId(account), "Wing Shop", "Phnom Penh", "KHR", amount=amount, **timestamps)
    )


def _tampered() -> str:
    """A code with another last CRC digit: its CRC no longer holds."""
    code = _code()
    return code[:-1] + ("1" if code[-1] == "0" else "0")


BAD_TRANSFERS = [
    # a payment does not claim a code it does not carry, or that does not bind it
    (_payment(reference=khqr_md5(_code())), "reference_mismatch"),
    (_payment(reference=khqr_md5(_code()) + ":static"), "reference_mismatch"),
    (_payment("1", khqr=_code()), "reference_mismatch"),
    (_payment(khqr=_code(account="shop@wing")), "reference_mismatch"),
    (_payment(khqr=_tampered()), "reference_mismatch"),
    (_payment(khqr="not a code"), "reference_mismatch"),
    (_payment(khqr="x" * 1025), "bad_request"),
    (_payment(khqr=5), "bad_request"),
    (_payment(wait_ms="5000"), "bad_parameter"),
    (_payment(wait_ms=True), "bad_parameter"),
    (_payment(wait_ms=5000.0), "bad_parameter"),
    (_payment(wait_ms=-1), "bad_parameter"),
    (_payment(wait_ms=60_001), "bad_parameter"),
    (_payment(wait_ms=10**30), "bad_parameter"),
    (_payment(amount="١٢"), "invalid_amount"),
    (_payment(amount="1e3"), "invalid_amount"),
    (_payment(amount="-5"), "invalid_amount"),
    (_payment(amount="0"), "invalid_amount"),
    (_payment(amount="1.5"), "invalid_amount"),
    (_payment(amount="9" * 40), "amount_overflow"),
    (_payment(amount="9" * 5000), "bad_request"),
    (_payment(amount=25), "bad_request"),
    (_payment(memo=5), "bad_request"),
    (_payment(memo="x" * 257), "bad_request"),
    (_payment(memo="\ud800"), "bad_request"),
    (_payment(reference="r" * 65), "bad_request"),
    (_payment(reference=None), "bad_request"),
    (_payment(refrence="typo"), "unknown_field"),
    (_payment(asset="XYZ"), "unknown_asset"),
    (_payment(asset="\ud800"), "bad_request"),
    (_payment(asset=["KHR"]), "bad_request"),
    (_payment(to="Wing"), "invalid_id"),
    (_payment(to="\ud800@wing"), "bad_request"),
    ({"to": PAYEE, "asset": "KHR", "amount": "1"}, "bad_request"),
    (_payment(**{"from": "admin@wing"}), "permission_denied"),
]


def test_bank_transfer_pays_a_khqr_code(net: Net) -> None:
    """The back office pays a dynamic code once; the code's md5 finds the payment."""
    before = _settle(net)
    text = _code(25)
    code, first, _ = _transfer(net, _payment(khqr=text, wait_ms=20_000))
    assert code == 202 and first["status"] == "committed", first
    code, again, _ = _transfer(net, _payment(khqr=text, wait_ms=20_000))
    assert code == 202 and again["status"] == "rejected", again
    assert again["error"] == "already_paid"
    status, found = http(f"{net.url(BANK)}/v1/transactions?khqr_md5={khqr_md5(text)}")
    assert status == 200 and [t["hash"] for t in found["transactions"]] == [first["hash"]]
    assert found["transactions"][0]["khqr"] == text
    assert _khr(_settle(net)) == _khr(before) - 25


def test_invalid_wait_ms_pays_nothing(net: Net) -> None:
    before = _settle(net)
    for _ in range(2):  # a client that retries on 400, without a key
        code, body, _ = _transfer(net, _payment(wait_ms="5000"))
        assert code == 400 and body["error"]["code"] == "bad_parameter", body
    _paid_nothing(before, _settle(net))


def test_invalid_bank_transfer_pays_nothing(net: Net) -> None:
    before = _settle(net)
    for payload, expected in BAD_TRANSFERS:
        code, body, _ = _transfer(net, payload)
        assert 400 <= code < 500 and body["error"]["code"] == expected, (payload, code, body)
    _paid_nothing(before, _settle(net))


def test_bad_idempotency_key_pays_nothing(net: Net) -> None:
    before = _settle(net)
    for key in ("", "x" * 256, "caf\u00e9", "tab\there"):
        code, body, _ = _transfer(net, _payment(wait_ms=0), key=key)
        assert code == 400 and body["error"]["code"] == "bad_idempotency_key", (key, body)
    _paid_nothing(before, _settle(net))


def test_bad_bearer_bytes_are_unauthorized(net: Net) -> None:
    code, body, _ = _transfer(net, _payment(), token="\xff\xfe")
    assert code == 401 and body["error"]["code"] == "unauthorized"


def _khr(account: dict[str, Any]) -> int:
    return int(account["balances"]["KHR"])


def test_idempotent_retry_pays_once(net: Net) -> None:
    before = _settle(net)
    payment = _payment("31", memo="invoice 7", reference="bill-7")
    code, first, headers = _transfer(net, dict(payment, wait_ms=20_000), key="order-7")
    assert code == 202 and first["status"] == "committed", first
    assert "Idempotent-Replayed" not in headers
    code, again, headers = _transfer(net, dict(payment, wait_ms=0), key="order-7")
    assert code == 202 and again["hash"] == first["hash"], again
    assert again["status"] == "committed" and again["height"] == first["height"]
    assert headers.get("Idempotent-Replayed") == "true"
    code, body, _ = _transfer(net, dict(payment, amount="32"), key="order-7")
    assert code == 409 and body["error"]["code"] == "idempotency_conflict", body
    code, body, _ = _transfer(net, dict(payment, memo="invoice 8"), key="order-7")
    assert code == 409 and body["error"]["code"] == "idempotency_conflict", body
    after = _settle(net)
    assert _khr(after) == _khr(before) - 31
    assert after["nonce"] == before["nonce"] + 1 and after["pending_nonces"] == []


def test_concurrent_requests_with_one_key_pay_once(net: Net) -> None:
    before = _settle(net)
    payment = _payment("13", wait_ms=20_000)
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda _: _transfer(net, payment, key="order-13"), range(6)))
    assert {code for code, _, _ in replies} == {202}, replies
    assert len({body["hash"] for _, body, _ in replies}) == 1, replies
    assert sum(1 for _, _, h in replies if h.get("Idempotent-Replayed") != "true") == 1
    after = _settle(net)
    assert _khr(after) == _khr(before) - 13
    assert after["nonce"] == before["nonce"] + 1 and after["pending_nonces"] == []


def test_idempotency_key_survives_restart(net: Net) -> None:
    before = _settle(net)
    payment = _payment("17", wait_ms=20_000)
    code, first, _ = _transfer(net, payment, key="order-17")
    assert code == 202 and first["status"] == "committed", first
    net.kill(BANK)
    net.up()
    net.wait_converged()
    code, again, headers = _transfer(net, payment, key="order-17")
    assert code == 202 and again["hash"] == first["hash"] and again["status"] == "committed"
    assert headers.get("Idempotent-Replayed") == "true"
    code, body, _ = _transfer(net, dict(payment, to="admin@aba"), key="order-17")
    assert code == 409 and body["error"]["code"] == "idempotency_conflict", body
    after = _settle(net)
    assert _khr(after) == _khr(before) - 17
    assert after["nonce"] == before["nonce"] + 1 and after["pending_nonces"] == []
    # A new key after the restart still pays (the operator nonce continues from the store).
    code, fresh, _ = _transfer(net, payment, key="order-18")
    assert code == 202 and fresh["status"] == "committed" and fresh["hash"] != first["hash"]


def test_a_payment_that_fails_in_its_block_does_not_stop_the_back_office(net: Net) -> None:
    """An admitted payment to an account that does not exist fails at execution and is
    rejected; its nonce must be used again, not left as a gap that queues every later
    back-office payment for good."""
    bank = f"@{PAYER.split('@')[1]}"
    code, failed, _ = _transfer(net, dict(_payment("3"), to="ghost" + bank, wait_ms=20_000))
    assert code == 202 and failed["status"] == "rejected", failed
    for amount in ("4", "5"):
        code, paid, _ = _transfer(net, dict(_payment(amount), wait_ms=20_000))
        assert code == 202 and paid["status"] == "committed", paid


def test_the_hashes_view_lists_a_blocks_tx_ids(net: Net) -> None:
    """?view=hashes (what `bakong bench` follows) reads the ids without decoding the txs:
    the same ids, in order, as the full view, by height or by hash."""
    txs = [net.issue("aba", 1) for _ in range(3)]
    for tx in txs:
        assert net.submit("nbc", tx)[0] == 202
    net.wait_committed(BANK, [tx.hash.hex() for tx in txs])
    _, tip = _get(net, "/v1/blocks?limit=20")
    heights = [b["height"] for b in tip["blocks"] if b["txs"]]
    seen: list[str] = []
    for height in heights:
        code, full = _get(net, f"/v1/blocks/{height}")
        assert code == 200
        ids = [t["hash"] for t in full["txs"]]
        assert _get(net, f"/v1/blocks/{height}?view=hashes") == (
            200, {"height": height, "tx_hashes": ids}
        )  # fmt: skip
        by_hash = _get(net, f"/v1/blocks/{full['hash']}?view=hashes")
        assert by_hash == (200, {"height": height, "tx_hashes": ids})
        seen += ids
    assert {tx.hash.hex() for tx in txs} <= set(seen)
    assert _refused(_get(net, f"/v1/blocks/{2**40}?view=hashes")) == "not_found"
    # digits other than ASCII are no height, in either view
    for digits in ("%C2%B2", "%D9%A1"):  # superscript two, Arabic-Indic one
        for view in ("", "?view=hashes"):
            assert _refused(_get(net, f"/v1/blocks/{digits}{view}")) == "bad_parameter"
