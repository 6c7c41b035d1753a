"""`bakong pay` and `bakong tx find` end to end on the shared testnet: a merchant's KHQR
code paid from another bank's customer, found by md5 on every node, refused when paid
twice, expired or tampered; static codes; cross-currency payments through an operator."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from ledger.ids import AccountId
from ledger.khqr import KHQR, encode_khqr, khqr_md5
from tests.cli.conftest import Net


def new_code(net: Net, merchant: str, *flags: str) -> dict[str, Any]:
    out: dict[str, Any] = net.ok_json("khqr", "new", merchant, *flags)
    return out


def funded_customer(net: Net, bank: str, asset: str, amount: str, *flags: str) -> str:
    account = net.new_customer(bank, *flags)
    net.fund(account, asset, amount)
    return account


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_basic(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "KHR", "100000")
    code = new_code(
        net, merchant, "--amount", "15000", "--merchant-id", "M-001", "--acquiring-bank",
        "Wing Bank", "--name", "Angkor Coffee", "--bill-number", "INV-1",
    )  # fmt: skip
    paid = net.ok_json("pay", code["qr"], "--from", payer)
    assert paid["status"] == "committed"
    assert net.balance(payer, "KHR") == "85000"
    assert net.balance(merchant, "KHR") == "15000"
    found = net.ok_json("tx", "find", "--md5", code["md5"])
    assert len(found) == 1
    entry = found[0]
    assert entry["hash"] == paid["hash"] and entry["height"] == paid["height"]
    assert (entry["from"], entry["to"]) == (payer, merchant)
    assert (entry["currency"], entry["amount"]) == ("KHR", "15000")
    assert entry["reference"] == code["md5"] and entry["signer"] == payer
    assert isinstance(entry["time"], int) and entry["time"] > 1_700_000_000_000
    # every node indexed it, observers included
    for node in net.manifest.nodes:
        status, body = http_get(f"{node.http_url}/v1/transactions?khqr_md5={code['md5']}")
        assert status == 200 and body["transactions"] == found, node.name


def test_invalid_already_paid(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "KHR", "10000")
    code = new_code(net, merchant, "--amount", "4000")
    assert net.ok_json("pay", code["qr"], "--from", payer)["status"] == "committed"
    net.fails("already_paid", "pay", code["qr"], "--from", payer)
    # another payer cannot pay it again either, custodially or not
    other = funded_customer(net, "aclb", "KHR", "10000", "--no-key")
    net.fails("already_paid", "pay", code["qr"], "--from", other)
    assert net.balance(payer, "KHR") == "6000" and net.balance(other, "KHR") == "10000"
    assert net.balance(merchant, "KHR") == "4000"
    assert len(net.ok_json("tx", "find", "--md5", code["md5"])) == 1


def test_invalid_expired(net: Net) -> None:
    payer = funded_customer(net, "aba", "KHR", "1000")
    now = int(time.time() * 1000)
    text = encode_khqr(
        KHQR(
            account_id=AccountId("shop@wing"),
            merchant_name="Shop",
            merchant_city="Phnom Penh",
            currency="KHR",
            amount=500,
            created_ms=now - 7_200_000,
            expires_ms=now - 3_600_000,
        )
    )
    net.fails("expired", "pay", text, "--from", payer)
    assert net.balance(payer, "KHR") == "1000"


def test_invalid_tampered(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "KHR", "1000")
    text = new_code(net, merchant, "--amount", "100")["qr"]
    # a changed amount (5401100 -> 5401900) keeps the lengths right but breaks the CRC
    tampered = text.replace("5403100", "5403900")
    assert tampered != text
    net.fails("bad_crc", "pay", tampered, "--from", payer)
    assert net.balance(payer, "KHR") == "1000"


def test_static_code_pays_many_times(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "USD", "10.00")
    code = new_code(net, merchant, "--asset", "USD", "--name", "Noodle Stall")
    net.fails("amount_required", "pay", code["qr"], "--from", payer)
    for amount in ("1.25", "2"):
        assert net.ok_json("pay", code["qr"], "--from", payer, "--amount", amount)["status"] == (
            "committed"
        )
    assert net.balance(merchant, "USD") == "3.25" and net.balance(payer, "USD") == "6.75"
    found = net.ok_json("tx", "find", "--md5", code["md5"])
    assert [f["amount"] for f in found] == ["1.25", "2.00"]
    assert {f["reference"] for f in found} == {code["md5"] + ":static"}


def test_invalid_amount_mismatch(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "KHR", "1000")
    code = new_code(net, merchant, "--amount", "700")
    net.fails("amount_mismatch", "pay", code["qr"], "--from", payer, "--amount", "600")
    paid = net.ok_json("pay", code["qr"], "--from", payer, "--amount", "700")
    assert paid["status"] == "committed"


def test_invalid_insufficient_funds(net: Net) -> None:
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "KHR", "100")
    code = new_code(net, merchant, "--amount", "101")
    net.fails("insufficient_funds", "pay", code["qr"], "--from", payer)
    # the refused payment did not use the code up
    net.fund(payer, "KHR", "1")
    assert net.ok_json("pay", code["qr"], "--from", payer)["status"] == "committed"


def test_find_by_reference(net: Net) -> None:
    payer = funded_customer(net, "aba", "KHR", "1000")
    bill = f"BILL-{time.time_ns()}"
    sent = net.ok_json(
        "transfer", "--from", payer, "--to", "admin@wing", "--asset", "KHR", "--amount", "10",
        "--reference", bill,
    )  # fmt: skip
    found = net.ok_json("tx", "find", "--reference", bill)
    assert [f["hash"] for f in found] == [sent["hash"]]
    net.fails("not_found", "tx", "find", "--reference", bill + "-other")


def test_invalid_find_not_found(net: Net) -> None:
    net.fails("not_found", "tx", "find", "--md5", khqr_md5("never paid"))


def test_invalid_find_bad_md5(net: Net) -> None:
    net.fails("bad_md5", "tx", "find", "--md5", "xyz")
    status, body = http_get(f"{net.validator_urls[0]}/v1/transactions?reference=a&khqr_md5=b")
    assert status == 400 and body["error"]["code"] == "bad_parameter"
