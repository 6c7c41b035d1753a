"""Helpers of the web explorer's tests: plain HTTP reads of a node (what a client
without JavaScript gets), the CLI against the testnet, and waits on the browser."""

from __future__ import annotations

import itertools
import json
import random
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cli.devnet import testnet as tn
from cli.main import cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NODES = 5
DEADLINE_S = 60.0


@dataclass(frozen=True)
class Page:
    """An HTTP answer as the tests read it."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class WebNet:
    """A running testnet, its explorer's URL and helpers to drive it with the CLI."""

    home: Path
    manifest: tn.Manifest
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        """The first node's origin: the explorer is at url + "/"."""
        return self.manifest.nodes[0].http_url

    def node_url(self, index: int) -> str:
        return self.manifest.nodes[index].http_url

    def get(self, path: str, *, follow: bool = True, accept: str = "text/html") -> Page:
        """GET a path of the first node (no JavaScript: what a plain client sees)."""
        handlers = [] if follow else [_NoRedirect()]
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(self.url + path, headers={"Accept": accept})
        try:
            with opener.open(request, timeout=30) as response:
                return Page(response.status, dict(response.headers), response.read().decode())
        except urllib.error.HTTPError as exc:
            return Page(exc.code, dict(exc.headers), exc.read().decode(errors="replace"))

    def api(self, path: str) -> Any:
        page = self.get(path, accept="application/json")
        assert page.status == 200, (path, page.status, page.text)
        return page.json()

    def run(self, *args: str) -> Any:
        """A bakong command with --json; it must succeed."""
        code, out = self.run_any(*args)
        assert code == 0 and out is not None, (args, code, out)
        return out

    def run_any(self, *args: str) -> tuple[int, Any]:
        """A bakong command with --json that may fail: (exit code, its JSON or None)."""
        env = {"BAKONG_HOME": str(self.home), "BAKONG_NODE": None, "BAKONG_PASSPHRASE": None}
        result = CliRunner().invoke(cli, [*args, "--json"], env=env)
        assert "Traceback" not in result.output, result.output
        try:
            return result.exit_code, json.loads(result.stdout)
        except ValueError:
            return result.exit_code, None

    def new_account(self, bank: str, *flags: str) -> str:
        account = f"w{next(self._names)}_{random.randrange(10**6)}@{bank}"
        assert self.run("account", "create", account, *flags)["status"] == "committed"
        return account

    def pay(self, source: str, target: str, asset: str, amount: str, *extra: str) -> Any:
        sent = self.run("transfer", "--from", source, "--to", target, "--asset", asset,
                        "--amount", amount, *extra)  # fmt: skip
        assert sent["status"] == "committed", sent
        return sent

    def height(self) -> int:
        return int(self.api("/v1/status")["height"])


def browser_missing() -> str | None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return (
            "headless Chromium is not installed: apt-get install chromium chromium-driver "
            "(scripts/test installs them when run as root)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


def until(
    browser: Any, condition: Callable[[Any], Any], what: str, timeout: float = DEADLINE_S
) -> Any:
    """Wait for `condition(browser)` to be truthy; fail naming `what`."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(
            browser,
            timeout,
            ignored_exceptions=[StaleElementReferenceException, NoSuchElementException],
        ).until(condition)
    except TimeoutException as exc:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from exc


@dataclass(frozen=True)
class Story:
    """What the tests look at: accounts, payments (one with a hostile memo and
    reference), a rejected overdraft, a paid and an unpaid KHQR code."""

    payer: str
    payee: str
    memo_tx: str
    memo_height: int
    rejected_tx: str
    paid_code: str
    paid_md5: str
    paid_tx: str
    open_code: str


# What a payer may write; shown as text, it runs nothing.
MEMO = '<script>window.__pwned=1</script><b>bold</b> & "quotes"'
REFERENCE = '<img src=x onerror="window.__pwned=2">'


def tell_story(net: WebNet) -> Story:
    payer = net.new_account("aba")
    payee = net.new_account("wing", "--no-key")
    net.pay("admin@aba", payer, "USD", "500.00")
    memo = net.pay(payer, payee, "USD", "12.50", "--memo", MEMO, "--reference", REFERENCE)
    code, rejected = net.run_any(
        "transfer", "--from", payer, "--to", payee, "--asset", "USD", "--amount", "999999.00"
    )
    assert code != 0 and rejected["status"] == "rejected", rejected
    paid = net.run("khqr", "new", payee, "--amount", "5.00", "--asset", "USD",
                   "--name", "Cafe <i>Angkor</i>")  # fmt: skip
    paid_tx = net.run("pay", paid["qr"], "--from", payer)
    assert paid_tx["status"] == "committed", paid_tx
    unpaid = net.run("khqr", "new", payee, "--amount", "15000", "--bill-number", "INV-<1>")
    return Story(
        payer=payer,
        payee=payee,
        memo_tx=memo["hash"],
        memo_height=memo["height"],
        rejected_tx=rejected["hash"],
        paid_code=paid["qr"],
        paid_md5=paid["md5"],
        paid_tx=paid_tx["hash"],
        open_code=unpaid["qr"],
    )


class _Text(HTMLParser):
    """The text of a page, and of the element with a given id."""

    def __init__(self, wanted: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.wanted = wanted
        self.depth = 0  # > 0 inside the wanted element
        self.parts: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.parts.append(" ")  # elements are apart in what a reader sees
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if self.depth:
            self.depth += tag not in VOID
        elif self.wanted is not None and found.get("id") == self.wanted:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.wanted is None or self.depth:
            self.parts.append(data)


VOID = frozenset({"input", "meta", "link", "br", "img", "hr"})


def page_text(html: str, element_id: str | None = None) -> str:
    """The text a reader sees (of the element `element_id`), spaces collapsed."""
    parser = _Text(element_id)
    parser.feed(html)
    return " ".join("".join(parser.parts).split())


def page_links(html: str) -> list[str]:
    parser = _Text(None)
    parser.feed(html)
    return parser.hrefs
