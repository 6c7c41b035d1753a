"""`bakong pay` and `bakong tx find` end to end on the shared testnet: a merchant's KHQR
code paid from another bank's customer, found by md5 on every node, refused when paid
twice, expired or tampered; static codes; cross-currency payments through an operator."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from cli import http
from cli.keystore import DEV_PASSPHRASE, Keystore
from ledger.commands import Transfer
from ledger.constants import TX_VERSION
from ledger.ids import AccountId
from ledger.khqr import KHQR, encode_khqr, khqr_md5
from ledger.tx import TxBody, sign_tx
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
    assert (entry["khqr_md5"], entry["khqr"], entry["reference"]) == (code["md5"], code["qr"], "")
    assert entry["signer"] == payer
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


def _post_signed(net: Net, payer: str, transfer: Transfer) -> tuple[int, Any]:
    """Sign `transfer` with the payer's wallet key, as any wallet could, and submit it."""
    url = net.validator_urls[0]
    chain_id = http.send("GET", f"{url}/v1/status", timeout=10)["chain_id"]
    nonce = http.send("GET", f"{url}/v1/accounts/{payer}", timeout=10)["nonce"]
    body = TxBody(TX_VERSION, chain_id, payer, nonce, int(time.time() * 1000), (transfer,))
    raw = sign_tx(body, Keystore(net.home).load(payer, DEV_PASSPHRASE)).encode()
    try:
        reply = http.send("POST", f"{url}/v1/transactions", json.dumps({"tx": raw.hex()}).encode(),
                          timeout=10)  # fmt: skip
    except http.NodeReplyError as exc:
        return exc.status, exc.code
    return 202, reply


def test_invalid_squatting_a_dynamic_code(net: Net) -> None:
    """The attack of issue 13: a payer pays 1 riel 'for' a merchant's 15,000 KHR code
    (with its md5 as reference, or with the code itself) so that the code counts as paid.
    Every form is refused reference_mismatch; the genuine payment then commits, and the
    code's md5 finds only it."""
    merchant = net.new_customer("wing", "--no-key")
    squatter = funded_customer(net, "aba", "KHR", "100")
    code = new_code(net, merchant, "--amount", "15000")
    # the md5 alone, as a plain transfer's reference (the old form, and its static form)
    for reference in (code["md5"], code["md5"] + ":static", code["md5"].upper()):
        net.fails("reference_mismatch", "transfer", "--from", squatter, "--to", merchant,
                  "--asset", "KHR", "--amount", "1", "--reference", reference)  # fmt: skip
    # the code itself, with the wrong amount or the wrong payee, signed by hand
    for transfer in (
        Transfer(squatter, merchant, "KHR", 1, "", code["qr"]),
        Transfer(squatter, f"admin@{merchant.split('@')[1]}", "KHR", 1, "", code["qr"]),
    ):
        assert _post_signed(net, squatter, transfer) == (400, "reference_mismatch")
    net.fails("not_found", "tx", "find", "--md5", code["md5"])
    assert net.balance(squatter, "KHR") == "100" and net.balance(merchant, "KHR") == "0"
    payer = funded_customer(net, "aclb", "KHR", "20000")
    paid = net.ok_json("pay", code["qr"], "--from", payer)
    assert paid["status"] == "committed"
    found = net.ok_json("tx", "find", "--md5", code["md5"])
    assert [(f["hash"], f["from"], f["amount"]) for f in found] == [(paid["hash"], payer, "15000")]
    assert net.balance(merchant, "KHR") == "15000"


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
    assert {f["khqr_md5"] for f in found} == {code["md5"]}


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


def balances(net: Net, *accounts: str) -> dict[tuple[str, str], int]:
    """Minor units of KHR (0 decimals) and USD (2) per account."""
    out = {}
    for account in accounts:
        found = net.ok_json("balance", account)["balances"]
        out[account, "KHR"] = int(found["KHR"])
        out[account, "USD"] = int(found["USD"].replace(".", ""))
    return out


def test_usd_payer_pays_khr_code_across_currencies(net: Net) -> None:
    operator = "admin@alipayplus"
    assert net.ok_json("fx", "register", "alipayplus", "--name", "Alipay+")["status"] == "committed"
    for asset, amount in (("KHR", "100000000"), ("USD", "1000")):
        issued = net.ok_json("issue", "--to", operator, "--asset", asset, "--amount", amount)
        assert issued["status"] == "committed"
    net.fails("unknown_rate", "pay", new_code(net, "x@wing", "--amount", "1")["qr"],
              "--from", "admin@aba", "--from-asset", "USD")  # fmt: skip
    assert net.ok_json("fx", "set", "USD", "KHR", "4100", "--operator", "alipayplus")["status"] == (
        "committed"
    )
    assert {"operator": "alipayplus", "base": "USD", "quote": "KHR", "numerator": 41,
            "denominator": 1, "rate": "4100"} in net.ok_json("fx", "show")  # fmt: skip
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "USD", "20.00")
    code = new_code(net, merchant, "--amount", "15000", "--name", "Angkor Coffee")
    before = balances(net, payer, merchant, operator)
    paid = net.ok_json("pay", code["qr"], "--from", payer, "--from-asset", "USD")
    assert paid["status"] == "committed"
    after = balances(net, payer, merchant, operator)
    # 15000 riel at 4100 per dollar is 3.6585... dollars: 3.66, rounded up to the cent
    change = {key: after[key] - before[key] for key in before}
    assert change == {
        (payer, "USD"): -366, (payer, "KHR"): 0,
        (operator, "USD"): 366, (operator, "KHR"): -15000,
        (merchant, "USD"): 0, (merchant, "KHR"): 15000,
    }  # fmt: skip
    # nothing was created or destroyed: each asset's changes sum to zero
    for asset in ("KHR", "USD"):
        assert sum(delta for (_, a), delta in change.items() if a == asset) == 0
    [entry] = net.ok_json("tx", "find", "--md5", code["md5"])
    assert (entry["from"], entry["to"], entry["currency"], entry["amount"]) == (
        payer,
        merchant,
        "KHR",
        "15000",
    )
    assert (entry["source_currency"], entry["source_amount"], entry["operator"]) == (
        "USD",
        "3.66",
        "alipayplus",
    )
    assert "15,000 KHR (paid 3.66 USD via alipayplus)" in net.ok("tx", "find", "--md5", code["md5"])
    net.fails("already_paid", "pay", code["qr"], "--from", payer, "--from-asset", "USD")
    # a foreign wallet's payment arrives through the operator's account, same reference
    foreign = new_code(net, merchant, "--amount", "8200")
    via_operator = net.ok_json("pay", foreign["qr"], "--from", operator)
    assert via_operator["status"] == "committed"
    [arrived] = net.ok_json("tx", "find", "--md5", foreign["md5"])
    assert (arrived["from"], arrived["khqr_md5"]) == (operator, foreign["md5"])
    assert net.balance(merchant, "KHR") == "23200"


def test_khr_payer_pays_usd_code_at_an_exact_ratio(net: Net) -> None:
    operator = "admin@unionpay"
    assert net.ok_json("fx", "register", "unionpay", "--name", "UnionPay")["status"] == "committed"
    assert net.ok_json("issue", "--to", operator, "--asset", "USD", "--amount", "100")[
        "status"
    ] == ("committed")
    sent = net.ok_json("fx", "set", "KHR", "USD", "--ratio", "1/41", "--operator", "unionpay")
    assert sent["status"] == "committed"
    assert net.ok_json("fx", "show", "--operator", "unionpay") == [
        {"operator": "unionpay", "base": "KHR", "quote": "USD", "numerator": 1,
         "denominator": 41, "rate": "0.000244"}
    ]  # fmt: skip
    merchant = net.new_customer("wing", "--no-key")
    payer = funded_customer(net, "aba", "KHR", "10000")
    code = new_code(net, merchant, "--asset", "USD")
    paid = net.ok_json(
        "pay", code["qr"], "--from", payer, "--amount", "2.05", "--from-asset", "KHR",
        "--via", "unionpay",
    )  # fmt: skip
    assert paid["status"] == "committed"
    # 205 cents at 41 riel a cent: 8405 riel, exact
    assert net.balance(payer, "KHR") == "1595" and net.balance(merchant, "USD") == "2.05"
    assert net.balance(operator, "KHR") == "8405" and net.balance(operator, "USD") == "97.95"


def test_invalid_fx_set(net: Net) -> None:
    net.fails("unknown_bank", "fx", "set", "USD", "KHR", "4000", "--operator", "nosuchbank")
    net.fails("invalid_amount", "fx", "set", "USD", "KHR", "0", "--operator", "aba")
    net.fails("invalid_rate", "fx", "set", "USD", "KHR", "--ratio", "1:2", "--operator", "aba")
    net.fails("unknown_asset", "fx", "set", "EUR", "KHR", "1", "--operator", "aba")
    usage = net.run("fx", "set", "USD", "KHR", "--operator", "aba")
    assert usage.exit_code == 2 and "exactly one of RATE and --ratio" in usage.output
    net.fails("permission_denied", "fx", "set", "USD", "KHR", "1", "--operator", "aba",
              "--as", "admin@aba")  # fmt: skip
