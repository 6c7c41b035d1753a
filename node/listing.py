"""`GET /v1/accounts?bank=B&limit=N&after=ACCOUNT`: the ledger's accounts (all, or one
bank's), in account-id order, with their balances, one bounded page at a time.

    {"accounts": [{"account", "role", "frozen", "balances": {"KHR": "1000", ...}}],
     "next": "<account id to pass as ?after=, or null at the end>"}

Accounts are stored by id (`name@bank`, see `ledger.schema`), so one bank's accounts are
spread over the whole key range. A request therefore reads at most `MAX_SCAN` account
records, whatever it asks for: when the scan stops at that bound the page may hold fewer
than `limit` accounts (even none) and `next` says where to go on. A client pages until
`next` is null. The worst request costs `MAX_SCAN` record reads plus the balances of at
most `MAX_LIMIT` accounts (one short range per account, one entry per asset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from ledger.ids import is_account_id, is_bank_code
from ledger.kv import KeyValueReader
from ledger.schema import ACCOUNT_PREFIX, make_account_key
from ledger.state import Account, State
from node.api import NODE, ApiError, parse_uint
from node.views import get_balances, get_decimals

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
# Account records one request reads at most (a bank's accounts are not contiguous).
MAX_SCAN: Final = 10_000


@dataclass(frozen=True, slots=True)
class AccountPage:
    accounts: list[dict[str, Any]]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "next": self.next}


def list_accounts(
    reader: KeyValueReader,
    *,
    bank: str | None = None,
    limit: int = DEFAULT_LIMIT,
    after: str | None = None,
    max_scan: int = MAX_SCAN,
) -> AccountPage:
    """Up to `limit` accounts (of `bank` when given) whose id sorts after `after`,
    reading at most `max_scan` account records."""
    decimals = get_decimals(reader)
    suffix = f"@{bank}" if bank else None
    # the cursor itself was on the previous page: start just past it
    start = make_account_key(after) + b"\x00" if after else None
    found: list[dict[str, Any]] = []
    scanned = 0
    last_seen: str | None = None
    for key, raw in reader.iterate(ACCOUNT_PREFIX, start=start):
        # a full page and another account after it: there is more to read
        if len(found) == limit:
            return AccountPage(found, found[-1]["account"])
        # the scan bound: go on from the last account read
        if scanned == max_scan:
            return AccountPage(found, last_seen)
        scanned += 1
        account = key[len(ACCOUNT_PREFIX) :].decode()
        last_seen = account
        if suffix is not None and not account.endswith(suffix):
            continue
        record = Account.decode(raw)
        found.append(
            {
                "account": account,
                "role": record.role,
                "frozen": record.frozen,
                "balances": get_balances(reader, account, decimals),
            }
        )
    return AccountPage(found, None)


async def get_accounts(request: web.Request) -> web.Response:
    store = request.app[NODE].store
    query = request.query
    limit = parse_uint("limit", query["limit"], 1, MAX_LIMIT) if "limit" in query else DEFAULT_LIMIT
    bank = query.get("bank") or None
    if bank is not None:
        if not is_bank_code(bank):
            raise ApiError(400, "invalid_id", f"bad bank code {bank!r}")
        if State(store).get_bank(bank) is None:
            raise ApiError(404, "unknown_bank", f"no bank {bank} on this chain")
    after = query.get("after") or None
    if after is not None and not is_account_id(after):
        raise ApiError(
            400, "bad_parameter", f"after must be an account id (name@bank), got {after!r}"
        )
    page = list_accounts(store, bank=bank, limit=limit, after=after)
    return web.json_response(page.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/accounts", get_accounts)
