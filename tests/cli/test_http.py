"""cli.http, the CLI's one HTTP client: the same answers and errors from its synchronous
and asynchronous transports, against a real loopback server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli import http
from cli.http import AsyncHttp, NodeReplyError, NodeUnreachable

# path -> (status, body bytes)
ROUTES: dict[str, tuple[int, bytes]] = {
    "/ok": (200, b'{"height": 7}'),
    "/refused": (400, b'{"error": {"code": "bad_nonce", "message": "nonce 3 is used"}}'),
    "/crash": (500, b"<html>Internal Server Error</html>"),
    "/notjson": (200, b"hello"),
}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        if self.path == "/slow":
            threading.Event().wait(2.0)
            status, body = 200, b"{}"
        elif self.path == "/echo":
            length = int(self.headers.get("Content-Length") or 0)
            received = self.rfile.read(length)
            status = 200
            body = json.dumps(
                {"type": self.headers.get("Content-Type"), "body": received.hex()}
            ).encode()
        else:
            status, body = ROUTES.get(
                self.path, (404, b'{"error": {"code": "not_found", "message": "no such path"}}')
            )
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout test)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _sync_get(url: str) -> Any:
    return http.send("GET", url, timeout=1.0)


def _async_get(url: str) -> Any:
    async def go() -> Any:
        async with AsyncHttp(4, 1.0) as client:
            return await client.get(url)

    return asyncio.run(go())


TRANSPORTS: list[Callable[[str], Any]] = [_sync_get, _async_get]


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_json_answer(server: str, get: Callable[[str], Any]) -> None:
    assert get(f"{server}/ok") == {"height": 7}


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_invalid_node_error_keeps_the_nodes_code(server: str, get: Callable[[str], Any]) -> None:
    with pytest.raises(NodeReplyError) as caught:
        get(f"{server}/refused")
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "bad_nonce",
        "nonce 3 is used",
        400,
    )


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_invalid_error_without_envelope(server: str, get: Callable[[str], Any]) -> None:
    with pytest.raises(NodeReplyError) as caught:
        get(f"{server}/crash")
    assert caught.value.code == "http_error"
    assert caught.value.status == 500


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_invalid_answer_not_json(server: str, get: Callable[[str], Any]) -> None:
    with pytest.raises(NodeReplyError) as caught:
        get(f"{server}/notjson")
    assert caught.value.code == "bad_response"


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_invalid_nobody_listening(dead_url: str, get: Callable[[str], Any]) -> None:
    with pytest.raises(NodeUnreachable) as caught:
        get(f"{dead_url}/ok")
    assert caught.value.code == "node_unreachable"
    assert dead_url in caught.value.message


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_invalid_timeout_is_unreachable(server: str, get: Callable[[str], Any]) -> None:
    with pytest.raises(NodeUnreachable):
        get(f"{server}/slow")


@pytest.mark.parametrize("get", TRANSPORTS, ids=["sync", "async"])
def test_proxy_from_environment_is_ignored(
    server: str, dead_url: str, get: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes are local: a proxy in the environment (here one that does not exist) must
    not be used, by either transport."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead_url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert get(f"{server}/ok") == {"height": 7}


def test_post_sends_body_and_content_type(server: str) -> None:
    sync = http.send("POST", f"{server}/echo", b"\x01\x02", timeout=1.0, content_type=http.MSGPACK)

    async def go() -> Any:
        async with AsyncHttp(2, 1.0) as client:
            return await client.post(f"{server}/echo", b"\x01\x02", http.MSGPACK)

    expected = {"type": "application/msgpack", "body": "0102"}
    assert sync == expected
    assert asyncio.run(go()) == expected


def test_parse_node_url() -> None:
    assert http.parse_node_url("http://127.0.0.1:26657/") == "http://127.0.0.1:26657"
    for bad in ("127.0.0.1:26657", "ftp://x", "http://"):
        with pytest.raises(NodeReplyError) as caught:
            http.parse_node_url(bad)
        assert caught.value.code == "bad_node_url"
