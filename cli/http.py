"""The CLI's one HTTP client for the node API: every command, the testnet manager and
the bench talk to nodes through this module.

Two transports with one set of rules:
- `send` (synchronous, urllib) for commands and the testnet manager;
- `AsyncHttp` (aiohttp, imported only when used) for the bench's concurrent load.

Both ignore any proxy from the environment (nodes are usually on 127.0.0.1), decode the
answer as JSON, turn the node's error envelope `{"error": {"code", "message"}}` into
`NodeReplyError` with the node's code, and a transport failure (refused, reset, timeout,
not HTTP) into `NodeUnreachable`. `cli/client.py` adds node selection and fail-over on top.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Final

from cli.errors import CliError

if TYPE_CHECKING:
    import aiohttp

JSON: Final = "application/json"
MSGPACK: Final = "application/msgpack"

# An http_proxy from the environment must not be used: the nodes are local.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NodeReplyError(CliError):
    """The node answered with `{"error": {"code", "message"}}`; `code` is the node's."""

    code = "node_error"

    def __init__(self, message: str, code: str | None = None, status: int = 0) -> None:
        super().__init__(message, code)
        self.status = status


class NodeUnreachable(CliError):
    """Nothing sensible came back: refused, reset, timed out, or not an HTTP answer."""

    code = "node_unreachable"


def parse_node_url(text: str) -> str:
    """An http(s) base URL such as http://127.0.0.1:26657, without a trailing slash."""
    parts = urllib.parse.urlsplit(text)
    # anything else would fail later inside urllib, without a clear message
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NodeReplyError(f"bad node URL {text!r}: expected http://HOST:PORT", "bad_node_url")
    return text.rstrip("/")


def quote(text: str) -> str:
    """One path segment (an account id keeps its `@`)."""
    return urllib.parse.quote(text, safe="@")


def with_query(path: str, query: dict[str, Any] | None) -> str:
    return f"{path}?{urllib.parse.urlencode(query)}" if query else path


def parse_error_body(body: Any) -> tuple[str, str] | None:
    """(code, message) of a node's error answer `{"error": {"code", "message"}}`, or None
    when the body is not one: the one reader of the API's error envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "code" not in error or "message" not in error:
        return None
    return str(error["code"]), str(error["message"])


def reply_error(url: str, status: int, data: bytes) -> NodeReplyError:
    """The error an HTTP status >= 400 stands for, with the node's code when it sent one."""
    try:
        parsed = parse_error_body(json.loads(data))
    except ValueError:
        parsed = None
    if parsed is None:
        return NodeReplyError(f"{url}: HTTP {status}", "http_error", status)
    code, message = parsed
    return NodeReplyError(message, code, status)


def decode_json(data: bytes, url: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise NodeReplyError(f"{url}: the answer is not JSON", "bad_response") from exc


# ---------------------------------------------------------------------------------------
# synchronous


def send(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    timeout: float,
    content_type: str = JSON,
) -> Any:
    """One request; the decoded JSON answer. Raises NodeReplyError for a status >= 400 or
    an answer that is not JSON, NodeUnreachable when no HTTP answer came back."""
    headers = {"Content-Type": content_type} if body is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        try:
            error_body = exc.read()
        except (OSError, http.client.HTTPException):
            error_body = b""
        raise reply_error(url, exc.code, error_body) from None
    except (OSError, http.client.HTTPException) as exc:
        raise NodeUnreachable(f"{url}: {_reason(exc)}") from exc
    return decode_json(data, url)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------
# asynchronous


class AsyncHttp:
    """A pool of keep-alive connections for many concurrent requests (the bench). Use as
    `async with AsyncHttp(connections, timeout_s) as http:`."""

    def __init__(self, connections: int, timeout_s: float) -> None:
        import aiohttp  # only the bench needs it: commands start faster without

        self._aiohttp = aiohttp
        self._session: aiohttp.ClientSession = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            trust_env=False,
        )

    async def __aenter__(self) -> AsyncHttp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()

    async def get(self, url: str) -> Any:
        return await self._request("GET", url, None, JSON)

    async def post(self, url: str, body: bytes, content_type: str = JSON) -> Any:
        return await self._request("POST", url, body, content_type)

    async def _request(self, method: str, url: str, body: bytes | None, content_type: str) -> Any:
        headers = {"Content-Type": content_type} if body is not None else None
        try:
            async with self._session.request(method, url, data=body, headers=headers) as resp:
                data = await resp.read()
                status = resp.status
        except (TimeoutError, self._aiohttp.ClientError) as exc:
            raise NodeUnreachable(f"{url}: {type(exc).__name__}: {exc}") from exc
        if status >= 400:
            raise reply_error(url, status, data)
        return decode_json(data, url)
