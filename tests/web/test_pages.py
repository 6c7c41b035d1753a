"""The explorer's pages as a client without JavaScript gets them (plain HTTP, the HTML
as served): what each page shows agrees with the JSON API, every user-written text is
escaped, empty and error states say what is missing, and no URL answers 500."""

from __future__ import annotations

import html
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from click.testing import CliRunner

from cli.main import cli
from ledger.khqr import decode_khqr
from node.webfeed import MAX_CLIENTS
from tests.node.netutil import wait_for
from tests.web.webutil import MEMO, REFERENCE, Story, WebNet, page_links, page_text

HTML_PAGES = ("/", "/blocks", "/search", "/khqr")


def test_pages_are_html_with_a_strict_csp(web_net: WebNet) -> None:
    for path in HTML_PAGES:
        page = web_net.get(path)
        assert page.status == 200, path
        assert page.headers["Content-Type"].startswith("text/html")
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        # no inline script or style: every script is a file of the node
        assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
        assert "<style" not in page.text and " style=" not in page.text


def test_home_shows_the_network(web_net: WebNet, story: Story) -> None:
    before = web_net.height()
    page = web_net.get("/")
    after = web_net.height()
    status = web_net.api("/v1/status")
    shown = int(page_text(page.text, "height").split()[0])
    assert before <= shown <= after
    assert page_text(page.text, "chain-id") == status["chain_id"]
    validators = page_text(page.text, "validators")
    for node in web_net.manifest.nodes:
        assert (node.name in validators) == node.validator, node.name
    assert "signed" in validators
    assert page_text(page.text, "peers")  # the other nodes, by bank
    # the latest blocks and txs, with links to their pages
    links = page_links(page.text)
    assert f"/blocks/{shown}" in links
    assert f"/tx/{story.paid_tx}" in links
    assert "paid 5.00 USD to" in page_text(page.text, "txs")


def test_block_page_agrees_with_the_api(web_net: WebNet, story: Story) -> None:
    height = story.memo_height
    block = web_net.api(f"/v1/blocks/{height}")
    page = web_net.get(f"/blocks/{height}")
    assert page.status == 200
    text = page_text(page.text)
    for key in ("hash", "state_hash", "tx_root", "prev_hash", "proposer"):
        assert block[key] in page.text, key
    assert f"/tx/{story.memo_tx}" in page_links(page.text)
    signers = {sig["validator"] for sig in block["commit"]["signatures"]}
    assert f"{len(signers)} of 4 validators signed" in text
    assert f"/blocks/{height - 1}" in page_links(page.text)
    assert f"/blocks/{height + 1}" in page_links(page.text)
    # the same block by its hash and by a prefix of it
    for ref in (block["hash"], block["hash"][:12]):
        assert web_net.get(f"/blocks/{ref}").text == page.text


def test_tx_page_agrees_with_the_api(web_net: WebNet, story: Story) -> None:
    tx = web_net.api(f"/v1/transactions/{story.memo_tx}")
    page = web_net.get(f"/tx/{story.memo_tx[:10]}")
    assert page.status == 200
    text = page_text(page.text)
    assert "committed" in page_text(page.text, "tx-status")
    assert f"block {tx['height']}" in text
    assert f"{story.payer} paid 12.50 USD to {story.payee}" in text
    assert tx["tx"]["signatures"][0]["public_key"] in text
    assert f"{story.payer}'s registered key" in text
    # the memo and the reference are text: escaped, never markup
    assert MEMO in text and REFERENCE in text
    assert html.escape(MEMO, quote=True) in page.text
    assert "<script>window" not in page.text and "<img" not in page.text


def test_rejected_tx_says_why(web_net: WebNet, story: Story) -> None:
    page = web_net.get(f"/tx/{story.rejected_tx}")
    assert page.status == 200
    assert "rejected" in page_text(page.text, "tx-status")
    text = page_text(page.text)
    assert "insufficient_funds" in text and "needs 999,999.00 USD" in text


def test_account_page_agrees_with_the_api(web_net: WebNet, story: Story) -> None:
    account = web_net.api(f"/v1/accounts/{story.payer}")
    history = web_net.api(f"/v1/accounts/{story.payer}/transactions?limit=20")
    page = web_net.get(f"/accounts/{story.payer}")
    assert page.status == 200
    text = page_text(page.text)
    assert f"USD {account['balances']['USD']}" in text
    assert account["role"] in text and account["public_key"] in text
    shown = [link.removeprefix("/tx/") for link in page_links(page.text) if link.startswith("/tx/")]
    assert shown == [entry["hash"] for entry in history["transactions"]]  # newest first
    assert MEMO in text
    # any case finds the account: its page lives at the lowercase id
    moved = web_net.get(f"/accounts/{story.payer.upper()}", follow=False)
    assert moved.status == 302 and moved.headers["Location"].endswith(f"/accounts/{story.payer}")


def test_account_history_pages(web_net: WebNet) -> None:
    account = web_net.new_account("aba", "--no-key")
    hashes = [
        web_net.run("transfer", "--from", "admin@aba", "--to", account, "--asset", "KHR",
                    "--amount", str(100 + i), "--no-wait")["hash"]
        for i in range(22)
    ]  # fmt: skip
    wait_for(
        lambda: all(web_net.api(f"/v1/transactions/{h}")["status"] == "committed" for h in hashes),
        90,
        "22 transfers committed",
    )
    first = web_net.get(f"/accounts/{account}")
    older = [link for link in page_links(first.text) if "before=" in link]
    assert len(older) == 1
    second = web_net.get(older[0])
    seen = [
        link.removeprefix("/tx/")
        for page in (first, second)
        for link in page_links(page.text)
        if link.startswith("/tx/")
    ]
    api = web_net.api(f"/v1/accounts/{account}/transactions?limit=100")["transactions"]
    assert seen == [entry["hash"] for entry in api]  # 23 in all, newest first, no repeat
    assert "Newest" in page_text(second.text)


def test_search_goes_to_each_kind(web_net: WebNet, story: Story) -> None:
    block = web_net.api(f"/v1/blocks/{story.memo_height}")
    cases = {
        str(story.memo_height): f"/blocks/{story.memo_height}",
        story.memo_tx[:10]: f"/tx/{story.memo_tx}",
        story.memo_tx.upper(): f"/tx/{story.memo_tx}",
        block["hash"][:16]: f"/blocks/{story.memo_height}",
        story.payer.upper(): f"/accounts/{story.payer}",
        story.paid_md5: f"/khqr?md5={story.paid_md5}",
        story.open_code: "/khqr?qr=" + quote(story.open_code, safe=""),
    }
    for query, target in cases.items():
        page = web_net.get("/search?q=" + quote(query, safe=""), follow=False)
        assert page.status == 302, (query, page.status)
        found, wanted = urlsplit(page.headers["Location"]), urlsplit(target)
        assert found.path == wanted.path, query
        assert parse_qs(found.query) == parse_qs(wanted.query), query


def test_search_without_a_match(web_net: WebNet) -> None:
    page = web_net.get("/search?q=" + quote("<script>alert(1)</script>"))
    assert page.status == 404
    assert "nothing on this chain matches" in page_text(page.text)
    assert "<script>alert" not in page.text
    empty = web_net.get("/search?q=")
    assert empty.status == 200 and "Search for a block height" in page_text(empty.text)
    ghost = web_net.get("/search?q=nobody_here@aba", follow=True)
    assert ghost.status == 404 and "no account nobody_here@aba" in page_text(ghost.text)


def test_empty_and_error_states(web_net: WebNet) -> None:
    tip = web_net.height()
    cases = {
        "/blocks/99999": (404, f"no block 99999 yet; the chain is at {tip}"),
        "/blocks/0": (404, "height 0 is the genesis"),
        "/blocks/zz": (400, "neither a block height nor a block hash"),
        "/blocks/deadbeefdeadbeef": (404, "no block with a hash starting deadbeefdeadbeef"),
        "/tx/" + "0" * 64: (404, "this node knows no transaction"),
        "/tx/12345": (400, "is not a transaction hash"),
        "/accounts/nobody_here@aba": (404, "no account nobody_here@aba on this chain"),
        "/accounts/not-an-id": (400, "is not an account id"),
        "/khqr?md5=" + "0" * 32: (404, "no payment on this chain carries"),
        "/khqr?qr=000201junk": (400, "this is not a valid KHQR code"),
        "/no/such/page": (404, "this node has no page /no/such/page"),
        f"/blocks?before={tip + 100}": (200, f"The chain is at height {tip}"),
    }
    for path, (status, words) in cases.items():
        page = web_net.get(path)
        assert page.status == status, (path, page.status)
        assert words in page_text(page.text), (path, page_text(page.text))
    # API clients keep their JSON errors
    assert web_net.get("/no/such/page", accept="application/json").json()["error"]["code"]


HOSTILE = [
    "/blocks/-1",
    "/blocks/1e9",
    "/blocks/" + "9" * 40,
    "/blocks/%00",
    "/blocks/%ED%A0%80",
    "/blocks/%F0%9F%92%A9",
    "/blocks/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/blocks/1?page=0",
    "/blocks/1?page=99999999999999999999",
    "/blocks/1?page=-1",
    "/blocks?before=abc",
    "/blocks?before=0",
    "/blocks?before=%ED%A0%80",
    "/tx/" + "g" * 64,
    "/tx/" + "a" * 65,
    "/tx/%3Cscript%3E",
    "/tx/%ED%A0%80%ED%A0%80%ED%A0%80%ED%A0%80",
    "/accounts/%3Cscript%3E@aba",
    "/accounts/a@b",
    "/accounts/admin@aba?before=1:99999999999",
    "/accounts/admin@aba?before=%ED%A0%80",
    "/accounts/admin@aba?before=99999999999999999999:1",
    "/search?q=%ED%A0%80",
    "/search?q=" + "a" * 3000,
    "/search?q=000201%3Cb%3E",
    "/search?q=@",
    "/search?q=" + "1" * 19,
    "/search?q=" + "1" * 30,
    "/khqr?qr=" + "0" * 4000,
    "/khqr?qr=%ED%A0%80",
    "/khqr?md5=%3Cb%3E",
    "/khqr?md5=&qr=",
    "/static/..%2F..%2Fetc%2Fpasswd",
    "/static/%ED%A0%80",
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_urls_never_fail(web_net: WebNet, path: str) -> None:
    page = web_net.get(path)
    assert page.status < 500, (path, page.status, page.text[:300])
    assert "Traceback" not in page.text
    assert "<script>alert" not in page.text and "<b>" not in page.text


def test_khqr_page_of_an_open_code(web_net: WebNet, story: Story) -> None:
    page = web_net.get("/khqr?qr=" + quote(story.open_code, safe=""))
    assert page.status == 200
    text = page_text(page.text)
    code = decode_khqr(story.open_code)
    assert "waiting for payment" in page_text(page.text, "khqr-status")
    assert "15,000 KHR" in text and code.account_id in text
    assert "INV-<1>" in text and "INV-&lt;1&gt;" in page.text
    assert "(in 9 min" in text or "(in 10 min" in text  # the countdown, without JavaScript
    assert "<svg" in page.text and "No payment with this code yet." in text


def test_khqr_page_of_a_paid_code(web_net: WebNet, story: Story) -> None:
    page = web_net.get(f"/khqr?md5={story.paid_md5}")
    assert page.status == 200
    assert "paid" in page_text(page.text, "khqr-status")
    assert f"/tx/{story.paid_tx}" in page_links(page.text)
    assert "Cafe <i>Angkor</i>" in page_text(page.text)
    assert "<i>Angkor" not in page.text


def test_static_files(web_net: WebNet) -> None:
    home = web_net.get("/")
    for name, kind in (("explorer.js", "javascript"), ("home.js", "javascript"),
                       ("explorer.css", "text/css")):  # fmt: skip
        url = re.search(rf'"(/static/{re.escape(name)}\?v=[0-9a-f]+)"', home.text)
        assert url is not None, name
        page = web_net.get(html.unescape(url.group(1)))
        assert page.status == 200 and kind in page.headers["Content-Type"]
        assert "max-age" in page.headers["Cache-Control"]
    assert web_net.get("/static/secrets.txt").status == 404


def _open_stream(net: WebNet) -> Any:
    """An open stream of /v1/events (its headers read)."""
    request = urllib.request.Request(
        net.url + "/v1/events", headers={"Accept": "text/event-stream"}
    )
    return urllib.request.urlopen(request, timeout=30)


def _next_event(stream: Any) -> tuple[str, Any]:
    """(name, data) of the next event, skipping comments and the retry field."""
    name = ""
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            return name, json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended")


def test_events_start_with_a_snapshot(web_net: WebNet, story: Story) -> None:
    with _open_stream(web_net) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        name, snapshot = _next_event(stream)
    assert name == "snapshot"
    assert snapshot["status"]["chain_id"] == web_net.api("/v1/status")["chain_id"]
    assert snapshot["blocks"] and snapshot["txs"]
    assert {"hash", "height", "signer", "words"} <= set(snapshot["txs"][0])


def test_events_announce_each_block(web_net: WebNet) -> None:
    account = web_net.new_account("aba", "--no-key")
    with _open_stream(web_net) as stream:
        assert _next_event(stream)[0] == "snapshot"
        sent = web_net.pay("admin@aba", account, "KHR", "777")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            name, data = _next_event(stream)
            if name == "block" and data["block"]["height"] == sent["height"]:
                break
        else:
            raise AssertionError("no event for the block of the transfer")
    assert sent["hash"] in [tx["hash"] for tx in data["txs"]]
    assert data["status"]["height"] >= sent["height"]
    words = "".join(text for _, text in data["txs"][0]["words"])
    assert f"admin@aba paid 777 KHR to {account}" in words


def test_events_bound_their_clients(web_net: WebNet) -> None:
    """Streams are accepted up to MAX_CLIENTS (streams of earlier tests may still hold a
    place for a second), then refused with 429 too_many_clients."""
    streams = []
    try:
        for _ in range(MAX_CLIENTS + 1):
            try:
                streams.append(_open_stream(web_net))
            except urllib.error.HTTPError as exc:
                assert exc.code == 429
                assert json.loads(exc.read())["error"]["code"] == "too_many_clients"
                break
        else:
            raise AssertionError(f"{MAX_CLIENTS + 1} streams accepted")
        assert MAX_CLIENTS - 3 <= len(streams) <= MAX_CLIENTS
    finally:
        for stream in streams:
            stream.close()

    def accepted() -> bool:
        try:
            with _open_stream(web_net) as stream:
                return bool(stream.status == 200)
        except urllib.error.HTTPError as exc:
            assert exc.code == 429
            return False

    # a closed stream frees its place within seconds
    wait_for(accepted, 30, "a stream accepted after the others closed")


def test_explorer_web_prints_the_url(web_net: WebNet) -> None:
    found = web_net.run("explorer", "web")
    assert found["url"] == web_net.url + "/" and found["node"] == web_net.manifest.nodes[0].name
    env = {"BAKONG_HOME": str(web_net.home), "BAKONG_NODE": None}
    plain = CliRunner().invoke(cli, ["explorer", "web"], env=env)
    assert plain.exit_code == 0 and plain.stdout == found["url"] + "\n"
    page = urllib.request.urlopen(found["url"], timeout=30)
    assert "Bakong explorer" in page.read().decode()
