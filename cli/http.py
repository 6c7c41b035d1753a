"""The CLI's one HTTP client for the node API: every command, the testnet manager and
the bench talk to nodes through this module.

Two transports with one set of rules:
- `send` (synchronous, urllib) for commands and the testnet manager;
- `AsyncHttp` (aiohttp, imported only when used) for the bench's concurrent load.

Both ignore any proxy from the environment (nodes are usually on 127.0.0.1), decode the
answer as JSON, turn the node's error envelope `{"error": {"code", "message"}}` into
`NodeReplyError` with the node's code, and a transport failure (refused, reset, timeout,
not HTTP) into `NodeUnreachable`. `cli/client.py` adds node selection and fail-over on top.

HTTPS: certificates are always verified, against one CA file chosen for the process, in
this order: `use_ca_file` (the global `--cacert FILE`), the env `BAKONG_CACERT`, the
testnet home's CA (`use_testnet_ca`: `<home>/tls/ca.crt` of `testnet init --tls`, when
it exists), else the system's default trust (which honours `SSL_CERT_FILE`). A
certificate that does not verify is `TlsUntrusted` (`tls_untrusted`), never retried on
another node: they all share the CA.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cli.errors import CliError

if TYPE_CHECKING:
    import aiohttp

JSON: Final = "application/json"
MSGPACK: Final = "application/msgpack"
CACERT_ENV: Final = "BAKONG_CACERT"

# An http_proxy from the environment must not be used: the nodes are local.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NodeReplyError(CliError):
    """The node answered with `{"error": {"code", "message"}}`; `code` is the node's."""

    code = "node_error"

    def __init__(self, message: str, code: str | None = None, status: int = 0) -> None:
        super().__init__(message, code)
        self.status = status


class NodeUnreachable(CliError):
    """Nothing sensible came back: refused, reset, timed out, or not an HTTP answer.
    `reason` says which, in words (`connection refused`)."""

    code = "node_unreachable"

    def __init__(self, message: str = "", code: str | None = None, reason: str = "") -> None:
        super().__init__(message, code)
        self.reason = reason or message


def describe_failure(exc: BaseException) -> str:
    """Why a connection gave nothing, in words rather than errno and class names."""
    cause: BaseException | None = exc
    for _ in range(4):  # unwrap URLError.reason and aiohttp's os_error
        inner = getattr(cause, "reason", None) or getattr(cause, "os_error", None)
        if not isinstance(inner, BaseException):
            break
        cause = inner
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (nothing listens there: is the node running?)"
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, ConnectionResetError | BrokenPipeError):
        return "the connection was reset"
    if isinstance(cause, ssl.SSLError):
        # e.g. https:// to a node that serves plain HTTP
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause) or type(cause).__name__


class TlsUntrusted(CliError):
    """The node's certificate does not verify against the CA in use (or names another
    host). Not a NodeUnreachable: failing over to the next node would not help."""

    code = "tls_untrusted"


class BadCaFile(CliError):
    """The CA file to verify nodes with cannot be read or holds no certificate."""

    code = "bad_cacert"


# ---------------------------------------------------------------------------------------
# trust


@dataclass(frozen=True, slots=True)
class CaChoice:
    """The CA file certificates are verified against (None: the system's default trust),
    and where that choice came from, for error messages."""

    path: Path | None
    source: str


_cacert: Path | None = None
_testnet_ca: Path | None = None
# (CA file, its mtime) -> context and opener: a CA replaced on disk (a new testnet in
# the same home) is read again
_contexts: dict[tuple[str, int], tuple[ssl.SSLContext, urllib.request.OpenerDirector]] = {}
_contexts_lock = threading.Lock()


def use_ca_file(path: Path | None) -> None:
    """Verify nodes against this CA file in this process (the global `--cacert`); it
    comes before `BAKONG_CACERT` and the testnet's CA. None: back to that order."""
    global _cacert
    _cacert = path


def use_testnet_ca(path: Path | None) -> None:
    """The CA of the testnet the command works on (`<home>/tls/ca.crt`); used, when the
    file exists, if neither `--cacert` nor `BAKONG_CACERT` is given."""
    global _testnet_ca
    _testnet_ca = path


def get_ca_choice() -> CaChoice:
    """The CA file in force now, in the documented order."""
    if _cacert is not None:
        return CaChoice(_cacert, f"--cacert {_cacert}")
    from_env = os.environ.get(CACERT_ENV)
    if from_env:
        return CaChoice(Path(from_env), f"{CACERT_ENV}={from_env}")
    if _testnet_ca is not None and _testnet_ca.is_file():
        return CaChoice(_testnet_ca, f"the testnet's {_testnet_ca}")
    cert_file = os.environ.get("SSL_CERT_FILE")
    return CaChoice(None, f"SSL_CERT_FILE={cert_file}" if cert_file else "the system's CAs")


def _get_tls(choice: CaChoice) -> tuple[ssl.SSLContext, urllib.request.OpenerDirector]:
    """A client context that verifies certificates and host names against the chosen CA
    (TLS 1.2 at least), and a proxy-less opener using it. BadCaFile when the CA file is
    not usable."""
    if choice.path is None:
        key = ("system:" + os.environ.get("SSL_CERT_FILE", ""), 0)
    else:
        try:
            key = (str(choice.path), choice.path.stat().st_mtime_ns)
        except OSError as exc:
            raise BadCaFile(
                f"cannot read the CA file ({choice.source}): {_os_reason(exc)}"
            ) from exc
    with _contexts_lock:
        cached = _contexts.get(key)
    if cached is not None:
        return cached
    try:
        context = ssl.create_default_context(cafile=choice.path)
    except (OSError, ssl.SSLError) as exc:
        raise BadCaFile(
            f"cannot use the CA file ({choice.source}): {_os_reason(exc)}; expected PEM "
            "certificates"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with _contexts_lock:
        _contexts[key] = (context, opener)
    return context, opener


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _untrusted(url: str, error: ssl.SSLCertVerificationError, choice: CaChoice) -> TlsUntrusted:
    reason = error.verify_message or error.reason or str(error)
    return TlsUntrusted(
        f"{url}: certificate verify failed: {reason} (CA: {choice.source}); for a testnet "
        "made with --tls, give its HOME/tls/ca.crt with --cacert or BAKONG_CACERT"
    )


def _is_https(url: str) -> bool:
    return url[:8].lower() == "https://"


def parse_node_url(text: str) -> str:
    """An http(s) base URL such as http://127.0.0.1:26657, without a trailing slash."""
    parts = urllib.parse.urlsplit(text)
    # anything else would fail later inside urllib, without a clear message
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NodeReplyError(f"bad node URL {text!r}: expected http(s)://HOST:PORT", "bad_node_url")
    return text.rstrip("/")


def quote(text: str) -> str:
    """One path segment (an account id keeps its `@`)."""
    return urllib.parse.quote(text, safe="@")


def with_query(path: str, query: dict[str, Any] | None) -> str:
    return f"{path}?{urllib.parse.urlencode(query)}" if query else path


def parse_error_body(body: Any) -> tuple[str, str] | None:
    """(code, message) of a node's error answer `{"error": {"code", "message"}}`, or of
    an Open API refusal `{"responseCode": 1, "errorCode", "responseMessage"}` (code
    `openapi_refused`), or None when the body is neither: the one reader of both."""
    if isinstance(body, dict) and body.get("responseCode") == 1 and "errorCode" in body:
        return "openapi_refused", f"errorCode {body['errorCode']}: {body.get('responseMessage')}"
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
    choice = get_ca_choice() if _is_https(url) else None
    opener = _get_tls(choice)[1] if choice is not None else _DIRECT
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        try:
            error_body = exc.read()
        except (OSError, http.client.HTTPException):
            error_body = b""
        raise reply_error(url, exc.code, error_body) from None
    except (OSError, http.client.HTTPException) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(cause, ssl.SSLCertVerificationError) and choice is not None:
            raise _untrusted(url, cause, choice) from exc
        reason = describe_failure(exc)
        raise NodeUnreachable(f"{url}: {reason}", reason=reason) from exc
    return decode_json(data, url)


# ---------------------------------------------------------------------------------------
# asynchronous


class AsyncHttp:
    """A pool of keep-alive connections for many concurrent requests (the bench). Use as
    `async with AsyncHttp(connections, timeout_s) as http:`. https URLs are verified
    against the CA in force when the first one is sent (see the module's doc)."""

    def __init__(self, connections: int, timeout_s: float) -> None:
        import aiohttp  # only the bench needs it: commands start faster without

        self._aiohttp = aiohttp
        self._tls: tuple[CaChoice, ssl.SSLContext] | None = None
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
        tls = self._get_tls() if _is_https(url) else None
        context: ssl.SSLContext | bool = tls[1] if tls is not None else True
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, ssl=context
            ) as resp:
                data = await resp.read()
                status = resp.status
        except self._aiohttp.ClientConnectorCertificateError as exc:
            error = exc.certificate_error
            if tls is not None and isinstance(error, ssl.SSLCertVerificationError):
                raise _untrusted(url, error, tls[0]) from exc
            reason = describe_failure(exc)
            raise NodeUnreachable(f"{url}: {reason}", reason=reason) from exc
        except (TimeoutError, self._aiohttp.ClientError) as exc:
            reason = describe_failure(exc)
            raise NodeUnreachable(f"{url}: {reason}", reason=reason) from exc
        if status >= 400:
            raise reply_error(url, status, data)
        return decode_json(data, url)

    def _get_tls(self) -> tuple[CaChoice, ssl.SSLContext]:
        if self._tls is None:
            choice = get_ca_choice()
            self._tls = (choice, _get_tls(choice)[0])
        return self._tls
