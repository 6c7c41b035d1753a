"""`run_node(path)`: one node in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from ledger.errors import StoreError
from node.api import NODE
from node.app import create_app
from node.config import NodeConfig, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(config: NodeConfig) -> None:
    handler = logging.FileHandler(config.log_path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(config: NodeConfig) -> None:
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.http.host, config.http.port, reuse_address=True)
    await site.start()
    logging.getLogger("bakong.node").info("serving HTTP on %s", config.http_url)
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
    config = load_config(config_path)
    setup_logging(config)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(config))
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
