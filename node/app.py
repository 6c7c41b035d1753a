"""`create_app(config)`: the node as an aiohttp application (app factory, no globals).

The node starts and stops with the application through a cleanup context, so tests and
`bakong node run` share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from node import listing, openapi, webui
from node.api import NODE, add_routes, error_middleware
from node.config import NodeConfig
from node.runtime import Node


def create_app(config: NodeConfig, clock_ms: Callable[[], int] | None = None) -> web.Application:
    """`clock_ms`: the node's clock (ms since the epoch); None for the system clock."""
    app = web.Application(
        client_max_size=config.http.max_body_bytes, middlewares=[error_middleware]
    )
    app.cleanup_ctx.append(_node_context(config, clock_ms))
    add_routes(app)
    openapi.add_routes(app)
    listing.add_routes(app)
    webui.add_routes(app)
    return app


def _node_context(config: NodeConfig, clock_ms: Callable[[], int] | None):  # type: ignore[no-untyped-def]
    async def context(app: web.Application) -> AsyncIterator[None]:
        node = Node(config, clock_ms)
        app[NODE] = node
        await node.start()
        try:
            yield
        finally:
            await node.stop()

    return context
