"""`GET /v1/accounts` (node/listing.py): the accounts of the ledger or of one bank with
exact balances, paged by an account-id cursor, each request bounded in what it reads.

The listing runs on a ledger in memory; the HTTP tests serve it through the real route
and error middleware (in process), and one test asks a real node of a testnet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ledger.commands import Freeze
from ledger.kv import KeyValueReader
from ledger.schema import ACCOUNT_PREFIX, make_account_key
from ledger.state import Account
from ledger.store.memory import MemoryStore
from node import listing
from node.api import NODE, error_middleware
from tests.ledger.helpers import BALANCES, BANKS, Ledger, make_genesis

# 25 customers at aclb, 3 at wing, none at canadia: the filter has to skip most records.
CUSTOMERS = {f"c{i:02d}@aclb": True for i in range(25)} | {
    "alice@wing": True,
    "mid@wing": False,
    "zed@wing": True,
}
CUSTOMER_BALANCES = (
    *[b for b in BALANCES if b[0].startswith("admin@")],
    ("c03@aclb", "USD", 1250),
    ("c03@aclb", "KHR", 7),
    ("zed@wing", "KHR", 123_456_789),
)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    chain = Ledger(genesis=make_genesis(customers=CUSTOMERS, balances=CUSTOMER_BALANCES))
    result = chain.apply_tx(chain.sign("admin@nbc", Freeze("c05@aclb")))
    assert result.code is None
    return chain


def all_ids(ledger: Ledger) -> list[str]:
    banks = [f"admin@{code}" for code, _ in BANKS]
    return sorted([*banks, *CUSTOMERS])


class CountingReader:
    """A reader that counts the account records handed out by iteration."""

    def __init__(self, reader: KeyValueReader) -> None:
        self.reader = reader
        self.account_reads = 0

    def get(self, key: bytes) -> bytes | None:
        return self.reader.get(key)

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        for item in self.reader.iterate(prefix, start=start, reverse=reverse):
            if prefix == ACCOUNT_PREFIX:
                self.account_reads += 1
            yield item


def page_all(reader: KeyValueReader, **kwargs: Any) -> tuple[list[str], int]:
    """Every account id over all pages, and the number of requests it took."""
    ids: list[str] = []
    after = None
    for requests in range(1, 1000):
        page = listing.list_accounts(reader, after=after, **kwargs)
        ids += [a["account"] for a in page.accounts]
        if page.next is None:
            return ids, requests
        after = page.next
    raise AssertionError("paging did not end")


def test_lists_every_account_in_id_order_with_exact_balances(ledger: Ledger) -> None:
    page = listing.list_accounts(ledger.store)
    assert page.next is None
    assert [a["account"] for a in page.accounts] == all_ids(ledger)
    by_id = {a["account"]: a for a in page.accounts}
    assert by_id["c03@aclb"] == {
        "account": "c03@aclb",
        "role": "customer",
        "frozen": False,
        "balances": {"KHR": "7", "USD": "12.50"},
    }
    assert by_id["zed@wing"]["balances"] == {"KHR": "123456789", "USD": "0.00"}
    assert by_id["c05@aclb"]["frozen"] is True
    assert by_id["admin@aclb"]["role"] == "bank"
    assert by_id["admin@aclb"]["balances"] == {"KHR": "1000000", "USD": "1000.00"}


def test_pages_cover_everything_once(ledger: Ledger) -> None:
    ids, requests = page_all(ledger.store, limit=7)
    assert ids == all_ids(ledger)
    assert requests == -(-len(ids) // 7)  # no trailing empty page when the last is full


def test_full_last_page_says_there_is_no_more(ledger: Ledger) -> None:
    count = len(all_ids(ledger))
    assert listing.list_accounts(ledger.store, limit=count).next is None
    assert listing.list_accounts(ledger.store, limit=count - 1).next is not None


def test_the_cursor_is_exclusive(ledger: Ledger) -> None:
    page = listing.list_accounts(ledger.store, after="c03@aclb", limit=2)
    assert [a["account"] for a in page.accounts] == ["c04@aclb", "c05@aclb"]
    assert page.next == "c05@aclb"
    # a cursor need not name an existing account (ids sort bytewise: "c04@" < "c04a")
    page = listing.list_accounts(ledger.store, after="c04a@aclb", limit=1)
    assert [a["account"] for a in page.accounts] == ["c05@aclb"]


def test_bank_filter(ledger: Ledger) -> None:
    ids, _ = page_all(ledger.store, bank="wing", limit=2)
    assert ids == ["admin@wing", "alice@wing", "mid@wing", "zed@wing"]
    assert page_all(ledger.store, bank="canadia")[0] == ["admin@canadia"]


def test_scan_is_bounded_and_paging_goes_on(ledger: Ledger) -> None:
    reader = CountingReader(ledger.store)
    page = listing.list_accounts(reader, bank="wing", limit=100, max_scan=5)
    # the first five ids are admin@aclb, admin@canadia, admin@nbc, admin@wing, alice@wing
    assert reader.account_reads <= 6  # the bound, plus the one that says there is more
    assert [a["account"] for a in page.accounts] == ["admin@wing", "alice@wing"]
    assert page.next == "alice@wing"
    # a page can even come back empty with a cursor: the client keeps paging
    empty = listing.list_accounts(reader, bank="canadia", after="admin@nbc", max_scan=5)
    assert empty.accounts == [] and empty.next is not None
    ids, requests = page_all(ledger.store, bank="wing", max_scan=5)
    assert ids == ["admin@wing", "alice@wing", "mid@wing", "zed@wing"]
    assert requests > 1


def test_default_bound_reads_at_most_max_scan() -> None:
    store = MemoryStore()
    record = Account(b"", "customer", 0, False).encode()
    for i in range(listing.MAX_SCAN + 50):
        store.put(make_account_key(f"x{i:05d}@aclb"), record)
    store.put(make_account_key("zz@wing"), record)
    reader = CountingReader(store)
    first = listing.list_accounts(reader, bank="wing", limit=listing.MAX_LIMIT)
    assert reader.account_reads <= listing.MAX_SCAN + 1
    assert first.accounts == [] and first.next == f"x{listing.MAX_SCAN - 1:05d}@aclb"
    second = listing.list_accounts(reader, bank="wing", after=first.next)
    assert [a["account"] for a in second.accounts] == ["zz@wing"] and second.next is None


# ---------------------------------------------------------------------------------------
# HTTP, in process: the real route and error middleware over the ledger's store


def get(ledger: Ledger, path: str) -> tuple[int, Any]:
    async def main() -> tuple[int, Any]:
        app = web.Application(middlewares=[error_middleware])
        app[NODE] = SimpleNamespace(store=ledger.store)  # type: ignore[misc]
        listing.add_routes(app)
        async with TestClient(TestServer(app)) as client:
            response = await client.get(path)
            return response.status, json.loads(await response.text())

    return asyncio.run(main())


def test_http_shape_and_paging(ledger: Ledger) -> None:
    status, body = get(ledger, "/v1/accounts?bank=wing&limit=3")
    assert status == 200 and set(body) == {"accounts", "next"}
    assert [a["account"] for a in body["accounts"]] == ["admin@wing", "alice@wing", "mid@wing"]
    assert set(body["accounts"][0]) == {"account", "role", "frozen", "balances"}
    status, body = get(ledger, f"/v1/accounts?bank=wing&limit=3&after={body['next']}")
    assert status == 200 and [a["account"] for a in body["accounts"]] == ["zed@wing"]
    assert body["next"] is None


def test_http_default_limit(ledger: Ledger) -> None:
    status, body = get(ledger, "/v1/accounts")
    assert status == 200 and len(body["accounts"]) == min(100, len(all_ids(ledger)))


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "", "1e3", str(2**64)])
def test_http_bad_limit(ledger: Ledger, limit: str) -> None:
    status, body = get(ledger, f"/v1/accounts?limit={limit}")
    assert status == 400 and body["error"]["code"] == "bad_parameter", body
    assert "limit" in body["error"]["message"]


def test_http_unknown_and_bad_bank(ledger: Ledger) -> None:
    status, body = get(ledger, "/v1/accounts?bank=nosuch")
    assert status == 404 and body["error"]["code"] == "unknown_bank"
    status, body = get(ledger, "/v1/accounts?bank=NOT-A-BANK")
    assert status == 400 and body["error"]["code"] == "invalid_id"


def test_http_bad_cursor(ledger: Ledger) -> None:
    status, body = get(ledger, "/v1/accounts?after=nobody")
    assert status == 400 and body["error"]["code"] == "bad_parameter"
    assert "after" in body["error"]["message"]
