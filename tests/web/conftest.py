"""A real testnet and headless Chromium for the web explorer's tests.

The testnet (4 validators, 1 observer, fast timeouts, free ports) is shared by the tests
of this folder and always stopped after them. The browser is Debian's `chromium` driven
by its `chromium-driver` through selenium (no download: both paths are given); where
they are not installed the browser tests skip and say how to install them (scripts/test
does it when it runs as root). Waits poll conditions with generous deadlines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from cli.devnet import testnet as tn
from cli.testnet import write_wallet
from tests.node.netutil import FAST, init_on_free_ports
from tests.web.webutil import CHROMEDRIVER, CHROMIUM, Story, WebNet, browser_missing, tell_story

NODES = 5


@pytest.fixture(scope="package")
def web_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNet]:
    home = tmp_path_factory.mktemp("web-net") / "testnet"
    manifest = init_on_free_ports(
        home, validators=4, observers=1, consensus=FAST, wallet=write_wallet
    )
    try:
        tn.up_testnet(home, timeout=90)
        net = WebNet(home, manifest)
        net.run("issue", "--to", "admin@aba", "--asset", "USD", "--amount", "100000.00")
        net.run("issue", "--to", "admin@aba", "--asset", "KHR", "--amount", "50000000")
        yield net
    finally:
        tn.down_testnet(home)


@pytest.fixture(scope="package")
def story(web_net: WebNet) -> Story:
    return tell_story(web_net)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the folder's browser tests (1280x900 unless a test
    resizes it; `resize` puts it back)."""
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=en-US"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def desktop(browser: Any) -> Iterator[Any]:
    """The browser at desktop size, its console log emptied first."""
    browser.set_window_size(1280, 900)
    browser.get_log("browser")
    yield browser
    browser.set_window_size(1280, 900)
