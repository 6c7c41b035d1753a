"""The explorer in headless Chromium on a real testnet: the network page updates live
when a transfer commits, the search box finds each kind of thing, user input never runs
as script (on the server's pages and in what the scripts build from the live feed), a
phone-width window never scrolls sideways, and no page logs an error (a script the
Content-Security-Policy blocked would).

With BAKONG_SCREENSHOTS=DIR the network, block and tx pages are saved there as PNGs
(scripts/explorer_screenshots makes those of docs/explorer.md this way)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.webutil import MEMO, REFERENCE, Story, WebNet, until

pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

PHONE_WIDTHS = (375, 400)


def text_of(browser: Any, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def errors_logged(browser: Any) -> list[str]:
    """Console errors since the last call (CSP violations, failed scripts, missing
    files), but for the 4xx status of an error page itself."""
    page = browser.current_url
    return [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE"
        and not (e["message"].startswith(f"{page} - ") and "status of 4" in e["message"])
    ]


def open_page(browser: Any, net: WebNet, path: str) -> None:
    browser.get(net.url + path)
    until(browser, lambda b: b.execute_script("return document.readyState") == "complete",
          f"{path} loaded")  # fmt: skip


def is_live(browser: Any) -> bool:
    return text_of(browser, "#live") == "live"


def test_home_updates_live_after_a_transfer(desktop: Any, web_net: WebNet, story: Story) -> None:
    open_page(desktop, web_net, "/")
    until(desktop, is_live, "the live feed to connect")
    assert text_of(desktop, "#height") == str(web_net.height())
    account = web_net.new_account("wing", "--no-key")
    sent = web_net.pay("admin@aba", account, "USD", "3.25")
    until(desktop, lambda b: text_of(b, "#height") == str(sent["height"]), "the new height")
    tx_link = f'#txs a[href="/tx/{sent["hash"]}"]'
    until(desktop, lambda b: b.find_elements(By.CSS_SELECTOR, tx_link), "the transfer listed")
    row = desktop.find_element(By.CSS_SELECTOR, tx_link).find_element(By.XPATH, "./ancestor::tr")
    assert f"admin@aba paid 3.25 USD to {account}" in row.text
    block_link = f'#blocks a[href="/blocks/{sent["height"]}"]'
    assert desktop.find_elements(By.CSS_SELECTOR, block_link)
    assert len(desktop.find_elements(By.CSS_SELECTOR, "#txs tr")) <= 10
    # the charts are drawn (the canvases have the page's width, not their default)
    widths = desktop.execute_script(
        "return [...document.querySelectorAll('canvas')].map(c => c.width)"
    )
    assert len(widths) == 2 and all(w > 0 for w in widths)
    assert errors_logged(desktop) == []


def test_user_input_never_runs(desktop: Any, web_net: WebNet, story: Story) -> None:
    for path in (f"/tx/{story.memo_tx}", f"/accounts/{story.payer}", "/",
                 f"/blocks/{story.memo_height}",
                 "/khqr?qr=" + quote(story.open_code, safe="")):  # fmt: skip
        open_page(desktop, web_net, path)
        if path == "/":
            until(desktop, is_live, "the live feed to connect")  # its rows replace the server's
        assert desktop.execute_script("return window.__pwned") is None, path
        assert not desktop.find_elements(By.CSS_SELECTOR, "main img, main b, main i"), path
        body = text_of(desktop, "main")
        if path.startswith(("/tx/", "/accounts/")):
            assert MEMO in body, path
        if path in ("/", f"/tx/{story.memo_tx}"):
            assert REFERENCE in body, path
        assert errors_logged(desktop) == [], path


def search_for(browser: Any, net: WebNet, query: str) -> None:
    """Search from the network page and wait for the page the search leads to. Until the
    browser starts navigating, its URL is still the network page's, so waiting only for
    a URL without /search returned at once (and the next lookup read the old page)."""
    open_page(browser, net, "/")
    start = browser.current_url
    box = browser.find_element(By.CSS_SELECTOR, "form.search input[name=q]")
    box.send_keys(query, Keys.ENTER)

    def arrived(b: Any) -> bool:
        url = b.current_url
        return (
            url != start
            and "/search" not in url
            and b.execute_script("return document.readyState") == "complete"
        )

    until(browser, arrived, f"the search for {query[:20]}")


def test_the_search_box_finds_each_kind(desktop: Any, web_net: WebNet, story: Story) -> None:
    cases = [
        (str(story.memo_height), f"/blocks/{story.memo_height}", f"Block {story.memo_height}"),
        (story.memo_tx[:12], f"/tx/{story.memo_tx}", "Transaction"),
        (story.payer.upper(), f"/accounts/{story.payer}", story.payer),
        (story.paid_md5, "/khqr?md5=", "KHQR: Cafe <i>Angkor</i>"),
        (story.open_code, "/khqr?qr=", "KHQR: "),
    ]
    for query, url, title in cases:
        search_for(desktop, web_net, query)
        assert url in desktop.current_url, query
        assert text_of(desktop, "h1").startswith(title), query
    assert text_of(desktop, "#khqr-status") == "waiting for payment"
    assert desktop.find_elements(By.CSS_SELECTOR, ".qr svg path")
    search_for(desktop, web_net, story.paid_md5)
    assert text_of(desktop, "#khqr-status") == "paid"
    assert errors_logged(desktop) == []


def test_an_unknown_block_says_so(desktop: Any, web_net: WebNet) -> None:
    open_page(desktop, web_net, "/blocks/99999")
    assert text_of(desktop, "h1") == "No block 99999 yet"
    assert f"the chain is at {web_net.height()}" in text_of(desktop, ".notice")


def test_a_pending_tx_page_turns_committed(desktop: Any, web_net: WebNet) -> None:
    payer = web_net.new_account("aba")
    web_net.pay("admin@aba", payer, "KHR", "1000")
    signed = [
        web_net.run("transfer", "--from", payer, "--to", "admin@aba", "--asset", "KHR",
                    "--amount", "1", "--offline", "--nonce", str(nonce))
        for nonce in (0, 1)
    ]  # fmt: skip
    later = web_net.run("tx", "send", signed[1]["tx"], "--no-wait")  # waits for nonce 0
    assert later["status"] == "pending", later
    open_page(desktop, web_net, f"/tx/{later['hash']}")
    assert text_of(desktop, "#tx-status") == "pending"
    web_net.run("tx", "send", signed[0]["tx"])
    until(desktop, lambda b: text_of(b, "#tx-status") == "committed", "the page to show the commit")


def test_a_code_page_counts_down_and_turns_paid(
    desktop: Any, web_net: WebNet, story: Story
) -> None:
    code = web_net.run("khqr", "new", story.payee, "--amount", "2.00", "--asset", "USD")
    open_page(desktop, web_net, "/khqr?qr=" + quote(code["qr"], safe=""))
    first = text_of(desktop, ".countdown")
    assert first.startswith("(in ")
    until(desktop, lambda b: text_of(b, ".countdown") != first, "the countdown to tick", 10)
    paid = web_net.run("pay", code["qr"], "--from", story.payer)
    assert paid["status"] == "committed"
    until(desktop, lambda b: text_of(b, "#khqr-status") == "paid", "the code to show paid")
    assert desktop.find_elements(By.CSS_SELECTOR, f'a[href="/tx/{paid["hash"]}"]')


def _pages(story: Story) -> dict[str, str]:
    return {
        "network": "/",
        "blocks": "/blocks",
        "block": f"/blocks/{story.memo_height}",
        "tx": f"/tx/{story.memo_tx}",
        "account": f"/accounts/{story.payer}",
        "khqr": "/khqr?qr=" + quote(story.open_code, safe=""),
        "search": "/search?q=nothing-like-this",
        "missing": "/blocks/99999",
    }


@pytest.mark.parametrize("width", PHONE_WIDTHS)
def test_phone_width_has_no_sideways_scroll(
    desktop: Any, web_net: WebNet, story: Story, width: int
) -> None:
    desktop.set_window_size(width, 900)
    for name, path in _pages(story).items():
        open_page(desktop, web_net, path)
        if name == "network":
            until(desktop, is_live, "the live feed to connect")
        scroll, client = desktop.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.clientWidth]"
        )
        assert client <= width and scroll <= client, (name, width, scroll, client)
        assert errors_logged(desktop) == [], name


def test_screenshots(desktop: Any, web_net: WebNet, story: Story, tmp_path: Path) -> None:
    """The pages docs/explorer.md shows, at desktop and phone width."""
    folder = Path(os.environ.get("BAKONG_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    pages = _pages(story)
    shots = [(1280, name, "") for name in ("network", "block", "tx", "khqr")]
    shots += [(375, name, "-phone") for name in ("network", "tx")]
    for width, name, suffix in shots:
        desktop.set_window_size(width, 900)
        open_page(desktop, web_net, pages[name])
        if name == "network":
            until(desktop, is_live, "the live feed to connect")
        height = desktop.execute_script("return document.documentElement.scrollHeight")
        desktop.set_window_size(width, min(int(height) + 120, 4000))
        target = folder / f"{name}{suffix}.png"
        assert desktop.save_screenshot(str(target)) and target.stat().st_size > 10_000
