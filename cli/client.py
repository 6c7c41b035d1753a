"""A small synchronous client for the node HTTP API, with node selection and fail-over.

Without `--node`, the candidates are the nodes of the testnet home's manifest in order;
the first that answers serves the whole command (so the nonce read, the submission and
the wait see the same mempool), and a node that stops answering mid-command hands over
to the next. A node that answers with an error is not failed over: its answer stands.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final

from cli.devnet.testnet import load_manifest
from cli.errors import CliError

DEFAULT_TIMEOUT_S: Final = 10.0
# The node caps a long-poll at 60 s; the socket must outlast the poll.
MAX_WAIT_MS: Final = 60_000
_POLL_MARGIN_S: Final = 5.0

# Nodes are usually on 127.0.0.1: an http_proxy from the environment must not be used.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NodeReplyError(CliError):
    """The node answered with `{"error": {"code", "message"}}`; `code` is the node's."""

    code = "node_error"

    def __init__(self, message: str, code: str | None = None, status: int = 0) -> None:
        super().__init__(message, code)
        self.status = status


class NodeUnreachable(CliError):
    code = "node_unreachable"


class NodeClient:
    """The nodes one command may talk to. Candidate URLs are resolved on first use, so a
    command that never needs a node (e.g. `--offline --nonce N`) needs no testnet."""

    def __init__(self, home: Path, node_url: str | None, timeout: float = DEFAULT_TIMEOUT_S):
        self._home = home
        self._node_url = node_url
        self._timeout = timeout
        self._urls: list[str] | None = None

    @property
    def urls(self) -> list[str]:
        """Candidates, the one that last answered first."""
        if self._urls is None:
            if self._node_url:
                self._urls = [parse_node_url(self._node_url)]
            else:
                self._urls = [node.http_url for node in load_manifest(self._home).nodes]
        return self._urls

    @property
    def url(self) -> str:
        return self.urls[0]

    # Endpoints.
    def get_status(self) -> dict[str, Any]:
        return self._get_object("/v1/status")

    def get_assets(self) -> dict[str, int]:
        """Asset code -> decimals, as the node's ledger defines them."""
        body = self._get_object("/v1/assets")
        return {a["code"]: a["decimals"] for a in body.get("assets", [])}

    def get_account(self, account: str) -> dict[str, Any]:
        return self._get_object(f"/v1/accounts/{_quote(account)}")

    def get_account_transactions(
        self, account: str, limit: int, before: str | None = None
    ) -> dict[str, Any]:
        query = {"limit": limit} | ({"before": before} if before else {})
        return self._get_object(f"/v1/accounts/{_quote(account)}/transactions", query)

    def submit_tx(self, raw: bytes) -> str:
        """POST the signed tx; the node's refusal (4xx) raises NodeReplyError with its code."""
        body = json.dumps({"tx": raw.hex()}).encode()
        reply = self.request("POST", "/v1/transactions", body=body)
        return str(reply["hash"])

    def get_tx(self, tx_hash: str, wait_ms: int = 0) -> dict[str, Any]:
        wait_ms = max(0, min(wait_ms, MAX_WAIT_MS))
        return self._get_object(
            f"/v1/transactions/{_quote(tx_hash)}",
            {"wait_ms": wait_ms},
            timeout=self._timeout + wait_ms / 1000 + _POLL_MARGIN_S,
        )

    def get_blocks(self, limit: int, start: int | None = None) -> dict[str, Any]:
        query = {"limit": limit} | ({"from": start} if start is not None else {})
        return self._get_object("/v1/blocks", query)

    def get_block(self, ref: str) -> dict[str, Any]:
        return self._get_object(f"/v1/blocks/{_quote(ref)}")

    # Transport.
    def _get_object(
        self, path: str, query: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        reply = self.request("GET", path, timeout=timeout)
        if not isinstance(reply, dict):
            raise NodeReplyError(f"{self.url}{path}: expected a JSON object", "bad_response")
        return reply

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = None
    ) -> Any:
        """Send to the first candidate that answers; `node_unreachable` if none does."""
        failures: list[str] = []
        for index, url in enumerate(self.urls):
            try:
                reply = _send(method, url + path, body, timeout or self._timeout)
            except _Unreachable as exc:
                failures.append(f"{url} ({exc})")
                continue
            # remember who answered: the rest of the command talks to it first
            self.urls.insert(0, self.urls.pop(index))
            return reply
        raise NodeUnreachable("no node answers: " + "; ".join(failures))


def parse_node_url(text: str) -> str:
    """An http(s) base URL such as http://127.0.0.1:26657, without a trailing slash."""
    parts = urllib.parse.urlsplit(text)
    # anything else would fail later inside urllib, without a clear message
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NodeReplyError(f"bad node URL {text!r}: expected http://HOST:PORT", "bad_node_url")
    return text.rstrip("/")


class _Unreachable(Exception):
    """Nothing sensible came back: try the next node."""


def _send(method: str, url: str, body: bytes | None, timeout: float) -> Any:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            return _decode(response.read(), url)
    except urllib.error.HTTPError as exc:
        raise _api_error(exc, url) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Unreachable(_reason(exc)) from exc


def parse_error_body(body: Any) -> tuple[str, str] | None:
    """(code, message) of a node's error answer `{"error": {"code", "message"}}`, or None
    when the body is not one: the one reader of the API's error envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "code" not in error or "message" not in error:
        return None
    return str(error["code"]), str(error["message"])


def _api_error(exc: urllib.error.HTTPError, url: str) -> NodeReplyError:
    try:
        parsed = parse_error_body(json.loads(exc.read()))
    except (OSError, ValueError):
        parsed = None
    if parsed is None:
        return NodeReplyError(f"{url}: HTTP {exc.code}", "http_error", exc.code)
    code, message = parsed
    return NodeReplyError(message, code, exc.code)


def _decode(data: bytes, url: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise NodeReplyError(f"{url}: the answer is not JSON", "bad_response") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="@")
