"""The Open API sandbox's records: developer registrations, their tokens, and deeplinks.

NBC's Open API mails a verification code to a developer who registers and answers every
transaction check only with a Bearer token. The sandbox registers at once and answers the
token straight away (there is no mail), and also hands out a one-time verification code
that `/v1/verify` exchanges for another token, so both flows of an integration work.

Records live in the node's store (node-local, never hashed), so tokens survive a restart.
Secrets are stored only as sha256: a copy of the store does not yield a usable token.
Everything is bounded, since `request_token` and `generate_deeplink_by_qr` need no token:
at most `max_registrations` registrations (when full, one whose every token has expired
gives way), `TOKENS_PER_EMAIL` tokens per registration, and the `max_links` most recent
deeplinks. A renewal never revokes a token: anyone who knows an email may ask for one
(the sandbox mails nothing), so a renewal that dropped the oldest token would let anyone
log a developer out; with `TOKENS_PER_EMAIL` live tokens, renewals wait for one to expire.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ledger.codec import pack, unpack
from ledger.errors import CodecError
from ledger.kv import KeyValueStore
from ledger.schema import (
    OPENAPI_CODE_PREFIX,
    OPENAPI_LINK_ORDER_PREFIX,
    OPENAPI_LINK_PREFIX,
    OPENAPI_REGISTRATION_PREFIX,
    OPENAPI_TOKEN_PREFIX,
    decode_height,
    encode_height,
)

DEFAULT_TOKEN_TTL_MS: Final = 90 * 86_400_000
MAX_REGISTRATIONS: Final = 10_000
MAX_LINKS: Final = 10_000
TOKENS_PER_EMAIL: Final = 8
MAX_EMAIL: Final = 254
MAX_LABEL: Final = 128
_EMAIL_RE: Final = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}")
TOKEN_PREFIX: Final = "bks_"
CODE_PREFIX: Final = "bkv_"


class SandboxRefusal(Exception):
    """A refusal with the Open API's `error_code` (8: registered already, 10: not registered,
    6: unauthorized) and a message."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def normalize_email(text: str) -> str | None:
    """The email as stored (trimmed, lowercase), or None when it is not one."""
    email = text.strip().lower()
    if len(email) > MAX_EMAIL or _EMAIL_RE.fullmatch(email) is None:
        return None
    return email


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class Issued:
    """A token handed out, with its expiry, and (at registration) the verification code."""

    token: str
    expires_ms: int
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Deeplink:
    qr: str
    app_icon_url: str | None
    app_name: str | None
    app_callback: str | None


class Sandbox:
    """Registrations, tokens and deeplinks in `store`; `clock_ms` is the node's clock."""

    def __init__(
        self,
        store: KeyValueStore,
        clock_ms: Callable[[], int],
        token_ttl_ms: int = DEFAULT_TOKEN_TTL_MS,
        max_registrations: int = MAX_REGISTRATIONS,
        max_links: int = MAX_LINKS,
    ) -> None:
        self.store = store
        self.clock_ms = clock_ms
        self.token_ttl_ms = token_ttl_ms
        self.max_registrations = max_registrations
        self.max_links = max_links
        self._registrations = sum(1 for _ in store.iterate(OPENAPI_REGISTRATION_PREFIX))
        # when full with no registration to evict: none can be before this time (ms)
        self._full_until = 0
        first = next(store.iterate(OPENAPI_LINK_ORDER_PREFIX), None)
        last = next(store.iterate(OPENAPI_LINK_ORDER_PREFIX, reverse=True), None)
        self._first_link = 0 if first is None else _link_seq(first[0])
        self._next_link = 0 if last is None else _link_seq(last[0]) + 1

    # Registrations and tokens.
    def register(self, email: str, organization: str, project: str) -> Issued:
        """A new registration: its first token and its one-time verification code."""
        if self.store.get(_registration_key(email)) is not None:
            raise SandboxRefusal(8, "Email has been registered already.")
        if self._registrations >= self.max_registrations and not self._evict_one_stale():
            raise SandboxRefusal(
                9, "The sandbox holds as many registrations as it may; try again later."
            )
        code = CODE_PREFIX + secrets.token_urlsafe(18)
        token, expires_ms, token_hash = self._new_token()
        record = [organization, project, _digest(code), [token_hash]]
        with self.store.atomic_batch() as batch:
            batch.put(_registration_key(email), pack(record))
            batch.put(OPENAPI_CODE_PREFIX + _digest(code), email.encode())
            batch.put(OPENAPI_TOKEN_PREFIX + token_hash, pack([email, expires_ms]))
        self._registrations += 1
        return Issued(token, expires_ms, code)

    def verify(self, code: str) -> Issued:
        """Exchange a registration's verification code (once) for a token."""
        raw = self.store.get(OPENAPI_CODE_PREFIX + _digest(code))
        if raw is None:
            raise SandboxRefusal(6, "Unauthorized: the verification code is not valid.")
        issued = self._issue(raw.decode(), used_code=_digest(code))
        return issued

    def renew(self, email: str) -> Issued:
        if self.store.get(_registration_key(email)) is None:
            raise SandboxRefusal(10, "Not registered yet.")
        return self._issue(email)

    def is_token_valid(self, token: str) -> bool:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return False
        raw = self.store.get(OPENAPI_TOKEN_PREFIX + _digest(token))
        if raw is None:
            return False
        _, expires_ms = _unpack_list(raw, 2)
        return isinstance(expires_ms, int) and self.clock_ms() < expires_ms

    def _new_token(self) -> tuple[str, int, bytes]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return token, self.clock_ms() + self.token_ttl_ms, _digest(token)

    def _issue(self, email: str, used_code: bytes | None = None) -> Issued:
        raw = self.store.get(_registration_key(email))
        if raw is None:
            raise SandboxRefusal(10, "Not registered yet.")
        organization, project, code_hash, tokens = _unpack_list(raw, 4)
        live = [t for t in tokens if self._expiry_of(t) > self.clock_ms()]
        if len(live) >= TOKENS_PER_EMAIL:
            raise SandboxRefusal(
                9, f"{email} holds {TOKENS_PER_EMAIL} live tokens already: use one of them."
            )
        token, expires_ms, token_hash = self._new_token()
        kept = [*live, token_hash]
        with self.store.atomic_batch() as batch:
            for dropped in set(tokens) - set(live):
                batch.delete(OPENAPI_TOKEN_PREFIX + dropped)
            if used_code is not None:
                batch.delete(OPENAPI_CODE_PREFIX + used_code)
                code_hash = b""
            batch.put(_registration_key(email), pack([organization, project, code_hash, kept]))
            batch.put(OPENAPI_TOKEN_PREFIX + token_hash, pack([email, expires_ms]))
        return Issued(token, expires_ms)

    def _expiry_of(self, token_hash: bytes) -> int:
        found = self.store.get(OPENAPI_TOKEN_PREFIX + token_hash)
        return int(_unpack_list(found, 2)[1]) if found is not None else 0

    def _evict_one_stale(self) -> bool:
        """Free the slot of one registration whose every token has expired. A scan finds
        none only when every registration holds a live token; until the soonest of them
        expires, later calls answer at once (a flood of registrations costs one scan)."""
        now = self.clock_ms()
        if now < self._full_until:
            return False
        soonest: int | None = None
        for key, raw in self.store.iterate(OPENAPI_REGISTRATION_PREFIX):
            _, _, code_hash, tokens = _unpack_list(raw, 4)
            last_expiry = max((self._expiry_of(t) for t in tokens), default=0)
            if last_expiry > now:
                soonest = last_expiry if soonest is None else min(soonest, last_expiry)
                continue
            with self.store.atomic_batch() as batch:
                batch.delete(key)
                if code_hash:
                    batch.delete(OPENAPI_CODE_PREFIX + code_hash)
                for token_hash in tokens:
                    batch.delete(OPENAPI_TOKEN_PREFIX + token_hash)
            self._registrations -= 1
            return True
        self._full_until = soonest or 0
        return False

    # Deeplinks.
    def add_link(self, link: Deeplink) -> str:
        """Keep a deeplink (the oldest beyond `max_links` is forgotten); its id."""
        link_id = secrets.token_urlsafe(9)
        seq = self._next_link
        first = self._first_link
        record = pack([link.qr, link.app_icon_url, link.app_name, link.app_callback])
        with self.store.atomic_batch() as batch:
            batch.put(OPENAPI_LINK_PREFIX + link_id.encode(), record)
            batch.put(OPENAPI_LINK_ORDER_PREFIX + encode_height(seq), link_id.encode())
            while seq + 1 - first > self.max_links:
                order_key = OPENAPI_LINK_ORDER_PREFIX + encode_height(first)
                old = self.store.get(order_key)
                if old is not None:
                    batch.delete(OPENAPI_LINK_PREFIX + old)
                    batch.delete(order_key)
                first += 1
        self._first_link, self._next_link = first, seq + 1
        return link_id

    def get_link(self, link_id: str) -> Deeplink | None:
        if not 1 <= len(link_id) <= 32:
            return None
        raw = self.store.get(OPENAPI_LINK_PREFIX + link_id.encode())
        if raw is None:
            return None
        qr, icon, name, callback = _unpack_list(raw, 4)
        return Deeplink(qr, icon, name, callback)


def _registration_key(email: str) -> bytes:
    return OPENAPI_REGISTRATION_PREFIX + email.encode()


def _link_seq(order_key: bytes) -> int:
    return decode_height(order_key[len(OPENAPI_LINK_ORDER_PREFIX) :])


def _unpack_list(raw: bytes, length: int) -> list[Any]:
    """A record this module wrote; anything else in the store is a store fault."""
    try:
        items = unpack(raw)
    except CodecError as exc:
        raise ValueError("corrupt Open API sandbox record") from exc
    if not isinstance(items, list) or len(items) != length:
        raise ValueError("corrupt Open API sandbox record")
    return items
