"""The explorer's building blocks without a node: escaping (node.webhtml), commands in
words (node.webwords) and the bounds of the live feed's hub (node.webfeed)."""

from __future__ import annotations

import asyncio
import json

from ledger.commands import CreateAccount, Freeze, FxTransfer, Issue, SetRate, Transfer
from node.webfeed import CLIENT_QUEUE, EventHub, encode_event
from node.webhtml import Markup, esc, tag, void, words_html
from node.webwords import describe, words_text

DECIMALS = {"KHR": 0, "USD": 2}


def test_esc_escapes_markup_and_quotes() -> None:
    assert esc("<script>\"x\" & 'y'</script>") == (
        "&lt;script&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/script&gt;"
    )
    assert esc(Markup("<b>kept</b>")) == "<b>kept</b>"


def test_esc_replaces_lone_surrogates() -> None:
    # undecodable bytes in a URL arrive as surrogates: the page must still encode
    assert esc("a\udc80b").encode() == b"a?b"


def test_tag_escapes_children_and_attributes() -> None:
    html = tag("a", "<i>", href='/x" onclick="y', class_="c", data_ms=5, hidden=True, id=None)
    assert html == '<a href="/x&quot; onclick=&quot;y" class="c" data-ms="5" hidden>&lt;i&gt;</a>'
    assert void("input", name="q", value="<") == '<input name="q" value="&lt;">'


def test_words_link_accounts_and_escape_text() -> None:
    words = describe(Transfer("a@aba", "b@wing", "USD", 1250, "<ref>"), "a@aba", DECIMALS)
    assert words_text(words) == "a@aba paid 12.50 USD to b@wing (reference <ref>)"
    html = words_html(words)
    assert '<a href="/accounts/a@aba" class="account">a@aba</a>' in html
    assert "&lt;ref&gt;" in html and "<ref>" not in html


def test_words_of_each_command() -> None:
    cases = [
        (Issue("admin@aba", "KHR", 4_000_000), "admin@nbc issued 4,000,000 KHR to admin@aba"),
        (
            CreateAccount("s@aba", b""),
            "admin@nbc opened s@aba (customer, custodial: its bank signs)",
        ),
        (Freeze("s@aba"), "admin@nbc froze s@aba"),
        (SetRate("alipay", "USD", "KHR", 41, 1), "admin@nbc set alipay's rate: 1 USD = 4100 KHR"),
        (
            FxTransfer("t@aba", "m@wing", "alipay", "USD", 367, "KHR", 15000),
            "t@aba paid 3.67 USD as 15,000 KHR to m@wing through alipay",
        ),
    ]
    for cmd, expected in cases:
        assert words_text(describe(cmd, "admin@nbc", DECIMALS)) == expected


def test_an_event_is_one_frame() -> None:
    frame = encode_event("block", {"memo": "line\nbreak\u2028</script>"})
    name, data, end = frame.split(b"\n", 2)
    assert name == b"event: block" and end == b"\n"
    assert json.loads(data.removeprefix(b"data: "))["memo"] == "line\nbreak\u2028</script>"


def test_a_slow_client_is_dropped_not_buffered() -> None:
    async def scenario() -> None:
        hub = EventHub(max_clients=2)
        slow, quick = hub.subscribe(), hub.subscribe()
        assert slow is not None and quick is not None
        assert hub.subscribe() is None  # the bound on clients
        for _ in range(CLIENT_QUEUE):
            hub.publish(b"x")
            assert quick.queue.get_nowait() == b"x"
        hub.publish(b"one too many")
        assert slow.dropped and slow.queue.qsize() == CLIENT_QUEUE
        assert not quick.dropped and len(hub) == 1 and hub.dropped == 1
        hub.close()
        assert quick.queue.get_nowait() == b"one too many"
        assert quick.queue.get_nowait() is None and len(hub) == 0

    asyncio.run(scenario())
