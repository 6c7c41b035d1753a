"""`run_node(path)`: one node in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from ledger.errors import StoreError
from node.api import NODE
from node.app import create_app
from node.config import NodeConfig, TlsConfigError, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


async def serve(config: NodeConfig, tls: ssl.SSLContext | None = None) -> None:
    app = create_app(config)
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
    setup_logging(config)
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
        asyncio.run(serve(config, tls))
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
