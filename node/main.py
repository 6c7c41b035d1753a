"""`run_node(path)`: one node in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from ledger.errors import StoreError
from node.api import NODE
from node.app import create_app
from node.config import ConfigError, NodeConfig, TlsConfigError, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Test mode only (the nemesis, docs/reliability.md): with BAKONG_TEST_MODE=1, the node's
# clock runs BAKONG_TEST_CLOCK_SKEW_MS milliseconds (negative: behind) off the system's.
TEST_MODE_ENV = "BAKONG_TEST_MODE"
CLOCK_SKEW_ENV = "BAKONG_TEST_CLOCK_SKEW_MS"


def get_test_clock(env: Mapping[str, str]) -> tuple[Callable[[], int] | None, int]:
    """The skewed clock and its skew when test mode asks for one, else (None, 0). Without
    BAKONG_TEST_MODE=1 the skew variable is ignored; a skew that is not an integer is a
    ConfigError (one line, before the node starts)."""
    raw = env.get(CLOCK_SKEW_ENV, "").strip()
    if env.get(TEST_MODE_ENV) != "1" or not raw:
        return None, 0
    try:
        skew = int(raw)
    except ValueError:
        raise ConfigError(f"{CLOCK_SKEW_ENV}: expected an integer (ms), got {raw!r}") from None
    return (lambda: int(time.time() * 1000) + skew), skew


def setup_logging(config: NodeConfig) -> None:
    handler = logging.FileHandler(config.log_path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def load_server_tls(config: NodeConfig) -> ssl.SSLContext | None:
    """The HTTP API's server-side TLS context (TLS 1.2 at least) from `[http] tls_cert` and
    `tls_key`, or None for plain HTTP. A missing or unreadable file, or a certificate and
    key that are not a pair, raise TlsConfigError (`tls_config`) naming the setting."""
    cert, key = config.tls_cert_path, config.tls_key_path
    if cert is None or key is None:
        return None
    for setting, path in (("http.tls_cert", cert), ("http.tls_key", key)):
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise TlsConfigError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = f"http.tls_key {key} is not the private key of http.tls_cert {cert}"
        else:
            message = (
                f"http.tls_cert {cert}, http.tls_key {key}: expected a PEM certificate and "
                f"its PEM private key ({exc.reason or exc})"
            )
        raise TlsConfigError(message) from exc
    except (OSError, ValueError) as exc:
        raise TlsConfigError(
            f"http.tls_cert/http.tls_key: cannot load {cert}, {key}: {exc}"
        ) from exc
    return context


async def serve(
    config: NodeConfig,
    tls: ssl.SSLContext | None = None,
    clock_ms: Callable[[], int] | None = None,
) -> None:
    app = create_app(config, clock_ms)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, config.http.host, config.http.port, ssl_context=tls, reuse_address=True
    )
    await site.start()
    served = "HTTPS" if tls is not None else "HTTP"
    logging.getLogger("bakong.node").info("serving %s on %s", served, config.http_url)
    # Long-lived startup objects never need scanning again, and a node allocates many
    # short-lived tx objects: collect the young generation less often.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    node = app[NODE]
    failed = node.failed or asyncio.Event()
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(failed.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        await runner.cleanup()
    if node.failure is not None:
        raise NodeFailed(node.failure)


class NodeFailed(Exception):
    """Consensus stopped on an error of the node's own (e.g. its disk): exit non-zero."""


def run_node(config_path: Path) -> None:
    """Raises ConfigError (TlsConfigError among them) before anything starts; the caller
    prints it as one line."""
    config = load_config(config_path)
    clock_ms, skew = get_test_clock(os.environ)
    setup_logging(config)
    if clock_ms is not None:
        logging.getLogger("bakong.node").warning(
            "test mode: the node's clock is %+d ms off the system clock", skew
        )
    try:
        tls = load_server_tls(config)
    except TlsConfigError as exc:
        logging.getLogger("bakong.node").error("node refused to start: %s: %s", exc.code, exc)
        raise
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(config, tls, clock_ms))
    except NodeFailed as exc:
        cause = exc.args[0]
        print(f"error: node_failed: consensus stopped: {cause}; restart the node", file=sys.stderr)
        raise SystemExit(1) from None
    except StoreError as exc:
        # A store that cannot be used as it is (another chain, an older format): the
        # message says what to do, no traceback.
        logging.getLogger("bakong.node").error("node refused to start: %s: %s", exc.code, exc)
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception:
        logging.getLogger("bakong.node").exception("node stopped on an error")
        print(f"error: node_failed: see {config.log_path}", file=sys.stderr)
        raise SystemExit(1) from None
