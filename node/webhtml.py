"""HTML for the web explorer, built so that user input cannot become markup.

Every value that goes into a page passes through `esc` unless it is `Markup`: HTML that
`tag` (or `esc`) made from escaped parts. Memos, names, references and KHQR fields are
therefore text whatever they hold. Pages carry no inline script or style (the explorer's
Content-Security-Policy forbids both); scripts and styles are files under /static/.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, urlencode

from node.webwords import Words

SHORT_HASH: Final = 16


class Markup(str):
    """A string that is already HTML (made here from escaped parts)."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """`value` as HTML text. A lone surrogate (undecodable bytes in a URL) becomes '?',
    so that the page can always be encoded."""
    if isinstance(value, Markup):
        return value
    safe = str(value).encode("utf-8", "replace").decode("utf-8")
    return Markup(html.escape(safe, quote=True))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(esc(sep).join(esc(p) for p in parts))


def tag(name: str, /, *children: object, **attrs: object) -> Markup:
    """`<name attrs>children</name>`; `class_` is `class`, `data_x` is `data-x`; an
    attribute that is None or False is left out, True is written bare."""
    written = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        written.append(f" {attr}" if value is True else f' {attr}="{esc(value)}"')
    return Markup(f"<{name}{''.join(written)}>{join(children)}</{name}>")


def void(name: str, /, **attrs: object) -> Markup:
    """An element without content (input, meta, link)."""
    return Markup(tag(name, **attrs).removesuffix(f"</{name}>"))


def link(href: str, /, *children: object, **attrs: object) -> Markup:
    return tag("a", *children, href=href, **attrs)


# URLs of the explorer's pages: every variable part is quoted.
def block_url(height: int) -> str:
    return f"/blocks/{height}"


def tx_url(tx_hash: str) -> str:
    return f"/tx/{quote(tx_hash, safe='')}"


def account_url(account: str) -> str:
    return f"/accounts/{quote(account, safe='@')}"


def with_query(path: str, query: Mapping[str, object]) -> str:
    return f"{path}?{urlencode({k: str(v) for k, v in query.items()})}" if query else path


def short(hex_text: str) -> str:
    return hex_text[:SHORT_HASH]


def hash_link(href: str, hex_text: str) -> Markup:
    """A hash shortened in the text, whole in its title."""
    return link(href, tag("code", short(hex_text)), title=hex_text)


def account_link(account: str) -> Markup:
    return link(account_url(account), account, class_="account")


def words_html(words: Words) -> Markup:
    return join(account_link(value) if kind == "account" else value for kind, value in words)


def time_html(ms: int | None) -> Markup:
    """A block or tx time in UTC (the page's script shows it in the reader's zone)."""
    if ms is None:
        return Markup("-")
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return tag("time", shown, datetime=moment.isoformat(timespec="milliseconds"), data_ms=ms)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, body_id: str | None = None
) -> Markup:
    """A table inside a box that scrolls sideways on its own, so a wide table never
    widens the page."""
    head = tag("thead", tag("tr", *(tag("th", h, scope="col") for h in headers)))
    body = tag(
        "tbody", *(tag("tr", *(tag("td", cell) for cell in row)) for row in rows), id=body_id
    )
    return tag("div", tag("table", head, body), class_="scroll")


def fields(rows: Iterable[tuple[str, object]]) -> Markup:
    """A two-column table of named values (a header, an account)."""
    body = tag("tbody", *(tag("tr", tag("th", k, scope="row"), tag("td", v)) for k, v in rows))
    return tag("div", tag("table", body, class_="fields"), class_="scroll box")


def section(title: str, *content: object, id_: str | None = None) -> Markup:
    return tag("section", tag("h2", title), *content, id=id_)


def notice(message: object, kind: str = "empty") -> Markup:
    """An empty or error state, said in a sentence."""
    return tag("p", message, class_=f"notice {kind}")


def badge(label: str, kind: str) -> Markup:
    return tag("span", label, class_=f"badge {kind}")


def search_form(value: str = "") -> Markup:
    field = void(
        "input",
        type="search",
        name="q",
        value=value,
        placeholder="height, tx hash, account, KHQR md5 or code",
        aria_label="Search",
        maxlength=2048,
    )
    return tag(
        "form",
        field,
        tag("button", "Search", type="submit"),
        action="/search",
        method="get",
        role="search",
        class_="search",
    )


def document(
    title: str,
    main: Markup,
    *,
    chain_id: str,
    node_name: str,
    assets: Mapping[str, str],
    scripts: Sequence[str] = (),
    query: str = "",
    page: str = "page",
) -> str:
    """A whole page: `assets` maps a static file's name to its URL; `scripts` names the
    page's own scripts (explorer.js, the shared one, always comes first); `page` names
    the kind of page for the scripts (body's data-page)."""
    script_tags = join(
        tag("script", src=assets[name], defer=True) for name in ("explorer.js", *scripts)
    )
    head = tag(
        "head",
        void("meta", charset="utf-8"),
        void("meta", name="viewport", content="width=device-width, initial-scale=1"),
        tag("title", f"{title} · {chain_id} explorer"),
        void("link", rel="stylesheet", href=assets["explorer.css"]),
        void("link", rel="icon", href=assets["favicon.svg"], type="image/svg+xml"),
        script_tags,
    )
    brand = link("/", tag("strong", "Bakong explorer"), " ", tag("span", chain_id, class_="chain"))
    header = tag(
        "header",
        tag("nav", brand, link("/blocks", "Blocks"), link("/khqr", "KHQR"), class_="top"),
        search_form(query),
    )
    footer = tag(
        "footer", f"served by node {node_name} · read-only · ", link("/v1/status", "JSON API")
    )
    body = tag("body", header, tag("main", tag("h1", title), main), footer, data_page=page)
    return f"<!doctype html>\n{tag('html', head, body, lang='en')}\n"
