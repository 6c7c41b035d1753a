"""PeerManager over real TCP on 127.0.0.1: handshakes, refusals, junk frames, reconnect,
queue bounds, broadcast, and a clean stop (every test checks no task is left behind)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from ledger.codec import pack
from ledger.crypto import PrivateKey
from node.config import P2PConfig
from node.p2p import FIRST_APP_MESSAGE_TYPE, MessageRouter, P2PParams, PeerManager
from node.p2p.framing import MSG_HELLO, encode_body
from tests.attack.harness import (
    RawSession,
    TransparentRelay,
    dial,
    flood_unauthenticated,
    forged_dial,
    old_protocol_hello,
)

CHAIN = "bakong-test"
MSG = FIRST_APP_MESSAGE_TYPE
FAST = P2PParams(reconnect_min=0.02, reconnect_max=0.2, handshake_timeout=2.0)


def p2p_tasks() -> list[asyncio.Task[Any]]:
    """Tasks running code of the P2P package."""
    return [
        task
        for task in asyncio.all_tasks()
        if "node/p2p/" in getattr(task.get_coro(), "cr_code", run.__code__).co_filename
    ]


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a scenario with a deadline, then check it left no task running."""

    async def main() -> None:
        await asyncio.wait_for(scenario(), 20)
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class Net:
    """Nodes sharing one registry of admitted keys; each node records what it receives."""

    def __init__(self) -> None:
        self.admitted: set[bytes] = set()
        self.managers: list[PeerManager] = []
        self.inbox: dict[bytes, list[tuple[bytes, int, Any]]] = {}
        self.events: dict[bytes, list[tuple[str, bytes]]] = {}

    def key(self) -> PrivateKey:
        key = PrivateKey.generate()
        self.admitted.add(key.public_key)
        return key

    async def node(
        self,
        key: PrivateKey | None = None,
        peers: list[PeerManager | int] | None = None,
        params: P2PParams = FAST,
        chain_id: str = CHAIN,
        listen_port: int = 0,
        on_message: Any = None,
    ) -> PeerManager:
        key = key or self.key()
        own = key.public_key
        inbox = self.inbox.setdefault(own, [])
        events = self.events.setdefault(own, [])
        ports = [p if isinstance(p, int) else p.listen_port for p in peers or []]
        manager = PeerManager(
            node_key=key,
            chain_id=chain_id,
            listen_host="127.0.0.1",
            listen_port=listen_port,
            peers=[("127.0.0.1", port) for port in ports],
            is_admitted=lambda k: k in self.admitted,
            on_message=on_message or (lambda peer, t, p: inbox.append((peer, t, p))),
            on_peer_connected=lambda peer: events.append(("up", peer)),
            on_peer_disconnected=lambda peer: events.append(("down", peer)),
            params=params,
        )
        self.managers.append(manager)
        await manager.start()
        return manager

    async def stop(self) -> None:
        for manager in self.managers:
            await manager.stop()


@contextlib.asynccontextmanager
async def network() -> AsyncIterator[Net]:
    net = Net()
    try:
        yield net
    finally:
        await net.stop()


def raw_session(port: int, key: PrivateKey) -> contextlib.AbstractAsyncContextManager[RawSession]:
    """A hand-driven peer: handshakes with `key`, then lets the test send what it likes."""
    return dial(port, key, CHAIN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def frame_of(body: bytes) -> bytes:  # a plain (unsealed) frame
    return len(body).to_bytes(4, "big") + body


def test_basic() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            a = await net.node(peers=[b])
            await wait_until(lambda: a.connected_peers() == [b.public_key])
            await wait_until(lambda: b.connected_peers() == [a.public_key])
            assert a.send(b.public_key, MSG, [1, b"x"])
            assert b.send(a.public_key, MSG + 1, "pong")
            await wait_until(lambda: bool(net.inbox[b.public_key] and net.inbox[a.public_key]))
            assert net.inbox[b.public_key] == [(a.public_key, MSG, [1, b"x"])]
            assert net.inbox[a.public_key] == [(b.public_key, MSG + 1, "pong")]
            assert net.events[a.public_key] == [("up", b.public_key)]
            assert a.counters.sessions == b.counters.sessions == 1
            assert not a.counters.refused and not b.counters.refused

    run(scenario)


def test_mutual_dial_keeps_one_session() -> None:
    async def scenario() -> None:
        async with network() as net:
            port_a, port_b = free_port(), free_port()
            a = await net.node(peers=[port_b], listen_port=port_a)
            b = await net.node(peers=[port_a], listen_port=port_b)
            await wait_until(lambda: a.connected_peers() == [b.public_key])
            await wait_until(lambda: b.connected_peers() == [a.public_key])
            await asyncio.sleep(0.5)
            assert a.connected_peers() == [b.public_key]
            assert b.connected_peers() == [a.public_key]
            assert a.send(b.public_key, MSG, 1) and b.send(a.public_key, MSG, 2)
            await wait_until(lambda: bool(net.inbox[a.public_key] and net.inbox[b.public_key]))
            # Connect and disconnect callbacks alternate, whatever duplicates came and went.
            for events in (net.events[a.public_key], net.events[b.public_key]):
                kinds = [kind for kind, _ in events]
                assert kinds[-1] == "up"
                assert all(x != y for x, y in itertools.pairwise(kinds))
            # The session kept is the one dialed by the lower key, on both ends.
            assert a.counters.sessions <= 2 and b.counters.sessions <= 2

    run(scenario)


def test_invalid_not_admitted_as_listener() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            stranger = PrivateKey.generate()
            a = await net.node(key=stranger, peers=[b])
            await wait_until(lambda: b.counters.refused["not_admitted"] >= 1)
            assert b.connected_peers() == [] and a.connected_peers() == []
            assert net.events[b.public_key] == []

    run(scenario)


def test_invalid_not_admitted_as_dialer() -> None:
    async def scenario() -> None:
        async with network() as net:
            stranger = await net.node(key=PrivateKey.generate())
            a = await net.node(peers=[stranger])
            await wait_until(lambda: a.counters.refused["not_admitted"] >= 2)
            # The listener finishes its side first; the dialer's refusal then ends it.
            await wait_until(lambda: stranger.connected_peers() == [])
            assert a.connected_peers() == []

    run(scenario)


def test_invalid_wrong_chain() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            a = await net.node(peers=[b], chain_id="another-chain")
            await wait_until(lambda: b.counters.refused["wrong_chain"] >= 1)
            # The listener says why in its log; a dialer is told nothing.
            await wait_until(lambda: a.counters.refused["closed"] >= 1)
            assert b.connected_peers() == [] and a.connected_peers() == []

    run(scenario)


def test_invalid_forged_signature() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            victim = net.key()
            forger = PrivateKey.generate()
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                async with forged_dial(b.listen_port, victim.public_key, forger, CHAIN) as raw:
                    await raw.reader.readexactly(1)
            await wait_until(lambda: b.counters.refused["bad_signature"] == 1)
            assert b.connected_peers() == []

    run(scenario)


def test_invalid_self_connection() -> None:
    async def scenario() -> None:
        async with network() as net:
            port = free_port()
            params = P2PParams(reconnect_min=0.02, reconnect_max=5.0, handshake_timeout=2.0)
            a = await net.node(peers=[port], listen_port=port, params=params)
            await wait_until(lambda: a.counters.refused["self"] == 2)
            await asyncio.sleep(0.3)
            # Both ends refused once, and the dialer backs off to reconnect_max (never
            # for good: a reflection on the path looks the same to the dialer).
            assert a.counters.refused["self"] == 2
            assert a.connected_peers() == []

    run(scenario)


def test_invalid_handshake_timeout() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node(params=P2PParams(handshake_timeout=0.2))
            reader, writer = await asyncio.open_connection("127.0.0.1", b.listen_port)
            try:
                await wait_until(lambda: b.counters.refused["timeout"] == 1)
                # The node sent its hello, then hung up on the silent client.
                assert len(await reader.read()) > 0
            finally:
                writer.transport.abort()

    run(scenario)


def test_invalid_junk_frames_dropped_node_keeps_serving() -> None:
    async def scenario() -> None:
        async with network() as net:
            router = MessageRouter()
            got: list[tuple[bytes, Any]] = []
            router.register(MSG, lambda peer, payload: got.append((peer, payload)))
            params = P2PParams(max_frame_bytes=4096, max_bad_frames=100)
            b = await net.node(params=params, on_message=router)
            a = await net.node(peers=[b])
            rogue = net.key()
            async with raw_session(b.listen_port, rogue) as raw:
                for body in (
                    b"\xc1\xc1\xc1",  # not msgpack
                    b"\x92\x10",  # truncated msgpack
                    b"",  # empty
                    pack([MSG, 1, 2]),  # wrong shape
                    pack(["type", 1]),  # type not an int
                    pack([-1, 1]),  # negative type
                    pack([MSG, 1]) + b"\x00",  # trailing bytes
                    pack({"a": 1}),  # a map
                    encode_body(MSG + 7, 1, 4096),  # no handler registered
                    encode_body(MSG_HELLO, 1, 4096),  # handshake after handshake
                    encode_body(MSG, "still here", 4096),
                ):
                    await raw.send_body(body)
                await wait_until(lambda: got == [(rogue.public_key, "still here")])
                assert sum(b.counters.dropped.values()) == 10
                assert b.counters.dropped["unknown_type"] == 1
                assert b.counters.dropped["protocol"] == 1
                # The honest peer is served throughout.
                assert sorted(b.connected_peers()) == sorted([a.public_key, rogue.public_key])
                assert a.send(b.public_key, MSG, "hello")
                await wait_until(lambda: (a.public_key, "hello") in got)

    run(scenario)


def test_invalid_too_many_bad_frames_disconnects() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node(params=P2PParams(max_bad_frames=5))
            a = await net.node(peers=[b])
            rogue = net.key()
            async with raw_session(b.listen_port, rogue) as raw:
                await wait_until(lambda: len(b.connected_peers()) == 2)
                for _ in range(5):
                    await raw.send_body(b"\xc1")
                await wait_until(lambda: rogue.public_key not in b.connected_peers())
                assert b.counters.disconnects["bad_frames"] == 1
                assert await raw.reader.read() == b""
            assert b.connected_peers() == [a.public_key]

    run(scenario)


def test_invalid_raw_garbage_before_handshake() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            a = await net.node(peers=[b])
            for junk in (os.urandom(64), b"\x00\x00\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", b.listen_port)
                writer.write(junk)
                writer.write_eof()
                await reader.read()
                writer.close()
            await wait_until(lambda: b.counters.refused.total() == 3)
            assert b.connected_peers() == [a.public_key]
            assert a.send(b.public_key, MSG, "ok")
            await wait_until(lambda: net.inbox[b.public_key] == [(a.public_key, MSG, "ok")])

    run(scenario)


def test_handler_exception_is_counted_not_fatal() -> None:
    async def scenario() -> None:
        async with network() as net:
            seen: list[Any] = []

            def handler(peer: bytes, msg_type: int, payload: Any) -> None:
                if payload == "boom":
                    raise RuntimeError("handler bug")
                seen.append(payload)

            b = await net.node(on_message=handler)
            a = await net.node(peers=[b])
            await wait_until(lambda: a.connected_peers() == [b.public_key])
            a.send(b.public_key, MSG, "boom")
            a.send(b.public_key, MSG, "after")
            await wait_until(lambda: seen == ["after"])
            assert b.counters.handler_errors == 1
            assert b.connected_peers() == [a.public_key]

    run(scenario)


def test_handler_sending_too_large_a_reply_is_not_blamed_on_the_peer() -> None:
    async def scenario() -> None:
        async with network() as net:
            managers: list[PeerManager] = []

            def reply_huge(peer: bytes, msg_type: int, payload: Any) -> None:
                managers[0].send(peer, MSG, b"z" * 8192)

            b = await net.node(params=P2PParams(max_frame_bytes=4096), on_message=reply_huge)
            managers.append(b)
            a = await net.node(peers=[b])
            await wait_until(lambda: a.connected_peers() == [b.public_key])
            for _ in range(3):
                a.send(b.public_key, MSG, "request")
            await wait_until(lambda: b.counters.handler_errors == 3)
            assert not b.counters.dropped
            assert b.connected_peers() == [a.public_key]

    run(scenario)


def test_async_handler_is_awaited_in_order() -> None:
    async def scenario() -> None:
        async with network() as net:
            seen: list[Any] = []

            async def handler(peer: bytes, msg_type: int, payload: Any) -> None:
                await asyncio.sleep(0.001)
                seen.append(payload)

            b = await net.node(on_message=handler)
            a = await net.node(peers=[b])
            await wait_until(lambda: a.connected_peers() == [b.public_key])
            for i in range(50):
                a.send(b.public_key, MSG, i)
            await wait_until(lambda: len(seen) == 50)
            assert seen == list(range(50))

    run(scenario)


def test_reconnect_after_peer_restarts() -> None:
    async def scenario() -> None:
        async with network() as net:
            b_key = net.key()
            b = await net.node(key=b_key)
            port = b.listen_port
            a = await net.node(peers=[b])
            await wait_until(lambda: a.connected_peers() == [b_key.public_key])
            await b.stop()
            await wait_until(lambda: a.connected_peers() == [])
            await asyncio.sleep(0.3)  # a few failed redials
            b = await net.node(key=b_key, listen_port=port)
            await wait_until(lambda: a.connected_peers() == [b_key.public_key], timeout=5)
            assert a.send(b_key.public_key, MSG, "again")
            await wait_until(lambda: (a.public_key, MSG, "again") in net.inbox[b_key.public_key])
            assert [kind for kind, _ in net.events[a.public_key]] == ["up", "down", "up"]

    run(scenario)


def test_send_queue_bound_under_slow_reader() -> None:
    async def scenario() -> None:
        async with network() as net:
            params = P2PParams(send_queue=1000)
            b = await net.node(params=params)
            sloth = net.key()
            async with raw_session(b.listen_port, sloth):
                await wait_until(lambda: b.connected_peers() == [sloth.public_key])
                blob = b"x" * 1024
                for _ in range(40):
                    # Sends never block; the writer runs between batches until TCP stalls.
                    assert all(
                        b.send(sloth.public_key, MSG, blob, droppable=True) for _ in range(1000)
                    )
                    assert b.queued_frames(sloth.public_key) <= 1000
                    await asyncio.sleep(0.005)
                # The peer reads nothing: most frames never left, and the oldest gave way.
                assert b.counters.frames_out < 20_000
                assert b.queued_frames(sloth.public_key) == 1000
                assert b.counters.dropped["queue_full"] == 40_000 - 1000 - b.counters.frames_out
                # Reliable frames evict droppable ones, then overflow: the peer is cut off.
                for _ in range(1001):
                    b.send(sloth.public_key, MSG, blob)
                await wait_until(lambda: b.connected_peers() == [])
                assert b.counters.disconnects["slow_peer"] == 1

    run(scenario)


def test_broadcast_reaches_all_peers() -> None:
    async def scenario() -> None:
        async with network() as net:
            hub = await net.node()
            spokes = [await net.node(peers=[hub]) for _ in range(3)]
            await wait_until(lambda: len(hub.connected_peers()) == 3)
            assert hub.broadcast(MSG, [b"batch", 1, 2, 3]) == 3
            excluded = spokes[0].public_key
            assert hub.broadcast(MSG + 1, "not for spoke 0", exclude=[excluded]) == 2
            expected = {spoke.public_key: 2 for spoke in spokes} | {excluded: 1}
            await wait_until(lambda: all(len(net.inbox[k]) >= n for k, n in expected.items()))
            assert net.inbox[excluded] == [(hub.public_key, MSG, [b"batch", 1, 2, 3])]
            for spoke in spokes[1:]:
                assert net.inbox[spoke.public_key] == [
                    (hub.public_key, MSG, [b"batch", 1, 2, 3]),
                    (hub.public_key, MSG + 1, "not for spoke 0"),
                ]

    run(scenario)


def test_refresh_admission_drops_deregistered_peer() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            a = await net.node(peers=[b])
            await wait_until(lambda: b.connected_peers() == [a.public_key])
            net.admitted.discard(a.public_key)
            b.refresh_admission()
            await wait_until(lambda: b.connected_peers() == [])
            assert b.counters.disconnects["not_admitted"] == 1
            await wait_until(lambda: b.counters.refused["not_admitted"] >= 1)

    run(scenario)


def test_stop_closes_everything() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            a = await net.node(peers=[b])
            await wait_until(lambda: b.connected_peers() == [a.public_key])
            await b.stop()
            assert b.connected_peers() == []
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", b.listen_port)
            assert p2p_tasks() != []
            await a.stop()
            assert p2p_tasks() == []

    run(scenario)


def test_invalid_silent_peer_is_closed_while_pinged_peer_stays() -> None:
    async def scenario() -> None:
        async with network() as net:
            params = P2PParams(ping_interval=0.05, idle_timeout=0.3)
            b = await net.node(params=params)
            a = await net.node(peers=[b], params=params)
            mute = net.key()
            async with raw_session(b.listen_port, mute):
                await wait_until(lambda: len(b.connected_peers()) == 2)
                await wait_until(lambda: b.counters.disconnects["idle"] == 1)
                assert b.connected_peers() == [a.public_key]
                await asyncio.sleep(0.4)
                assert b.connected_peers() == [a.public_key]
                assert a.counters.disconnects["idle"] == 0

    run(scenario)


def test_invalid_failing_registry_refuses_without_killing_the_dialer() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            a = await net.node(peers=[b])
            await wait_until(lambda: a.connected_peers() == [b.public_key])
            healthy = net.admitted
            net.admitted = None  # type: ignore[assignment]  # `k in None` raises TypeError
            b.refresh_admission()
            await wait_until(lambda: b.counters.refused["not_admitted"] >= 1)
            assert b.connected_peers() == []
            net.admitted = healthy
            await wait_until(lambda: b.connected_peers() == [a.public_key])

    run(scenario)


# The encrypted channel and what a stranger can spend.


def test_invalid_tampered_or_injected_frames_end_the_session() -> None:
    """A relay that forwards the real peers' bytes cannot add, replay or alter a frame:
    each ends the session before anything reaches the node."""

    async def scenario() -> None:
        async with network() as net:
            got: list[Any] = []
            b = await net.node(on_message=lambda peer, t, p: got.append(p))
            relay = TransparentRelay(b.listen_port)
            relay_port = await relay.start()
            try:
                a = await net.node(peers=[relay_port])
                await wait_until(lambda: b.connected_peers() == [a.public_key])
                assert a.send(b.public_key, MSG, "through the relay")
                await wait_until(lambda: got == ["through the relay"])
                # Replay the last sealed frame the relay saw: its counter is spent.
                await relay.inject(relay.seen_to_target[-1])
                await wait_until(lambda: b.counters.dropped["bad_mac"] == 1)
                await wait_until(lambda: b.counters.disconnects["bad_mac"] == 1)
                assert got == ["through the relay"]
                # The dialer reconnects through the relay; now a frame of the relay's own.
                await wait_until(lambda: b.connected_peers() == [a.public_key])
                relay.seen_to_target.clear()
                await relay.inject((40).to_bytes(4, "big") + bytes(40))
                await wait_until(lambda: b.counters.disconnects["bad_mac"] == 2)
                assert got == ["through the relay"]
            finally:
                await relay.stop()

    run(scenario)


def test_invalid_oversize_sealed_frame_ends_the_session_unread() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node(params=P2PParams(max_frame_bytes=4096))
            rogue = net.key()
            async with raw_session(b.listen_port, rogue) as raw:
                await wait_until(lambda: b.connected_peers() == [rogue.public_key])
                await raw.send_raw((1 << 30).to_bytes(4, "big"))
                await wait_until(lambda: b.counters.disconnects["oversize"] == 1)
                assert b.connected_peers() == []

    run(scenario)


def test_invalid_old_protocol_peer_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            reader, writer = await asyncio.open_connection("127.0.0.1", b.listen_port)
            try:
                writer.write(old_protocol_hello(CHAIN, net.key(), 26656))
                await writer.drain()
                await wait_until(lambda: b.counters.refused["wrong_version"] == 1)
                assert await reader.read() != b""  # our hello, then the hang-up
            finally:
                writer.transport.abort()
            a = await net.node(peers=[b])
            await wait_until(lambda: b.connected_peers() == [a.public_key])

    with caplog.at_level("WARNING", logger="bakong.p2p"):
        run(scenario)
    assert any(
        "wrong_version" in r.getMessage() and "protocol 1" in r.getMessage() for r in caplog.records
    )


def test_invalid_handshake_caps_per_address_and_in_total() -> None:
    """Silent connections hold handshake slots; at a cap the oldest gives way, so an
    honest peer still gets in while the flood goes on, and the hello deadline frees the
    rest."""

    async def scenario() -> None:
        async with network() as net:
            params = P2PParams(
                handshake_timeout=30.0,
                hello_timeout=30.0,
                max_pending_handshakes=6,
                max_pending_handshakes_per_address=4,
            )
            b = await net.node(params=params)
            silent = [await asyncio.open_connection("127.0.0.1", b.listen_port) for _ in range(6)]
            others: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
            try:
                # 4 per address: the two oldest from 127.0.0.1 were closed.
                await wait_until(lambda: b.counters.refused["too_many_handshakes"] == 2)
                assert await silent[0][0].read() != b"" and await silent[1][0].read() != b""
                # From another loopback address: 6 in all, so the third evicts one more.
                for _ in range(3):
                    others.append(
                        await asyncio.open_connection(
                            "127.0.0.1", b.listen_port, local_addr=("127.0.0.2", 0)
                        )
                    )
                await wait_until(lambda: b.counters.refused["too_many_handshakes"] == 3)
                # With every slot held by silent connections, an honest peer gets in.
                a = await net.node(peers=[b])
                await wait_until(lambda: b.connected_peers() == [a.public_key])
            finally:
                for _, writer in silent + others:
                    writer.transport.abort()

    run(scenario)


def test_invalid_silent_connection_is_closed_at_the_hello_deadline() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node(params=P2PParams(handshake_timeout=30.0, hello_timeout=0.2))
            reader, writer = await asyncio.open_connection("127.0.0.1", b.listen_port)
            try:
                await wait_until(lambda: b.counters.refused["timeout"] == 1, timeout=3)
                assert len(await reader.read()) > 0  # our hello, then the hang-up
            finally:
                writer.transport.abort()

    run(scenario)


def test_invalid_huge_first_frames_are_not_read() -> None:
    async def scenario() -> None:
        async with network() as net:
            b = await net.node()
            writers = await flood_unauthenticated(b.listen_port, 10, 16 << 20)
            try:
                await wait_until(lambda: b.counters.refused["malformed_hello"] == 10)
                # Nothing close to 160 MiB was taken in: the node hung up at the header.
                assert b.counters.bytes_in == 0
            finally:
                for writer in writers:
                    writer.transport.abort()

    run(scenario)


def test_pre_auth_bounds_come_from_the_node_config() -> None:
    config = P2PConfig(
        handshake_timeout_ms=1500, max_pending_handshakes=9, max_pending_handshakes_per_address=3
    )
    params = P2PParams.from_config(config)
    assert params.handshake_timeout == 1.5
    assert (params.max_pending_handshakes, params.max_pending_handshakes_per_address) == (9, 3)
    defaults = P2PParams.from_config(P2PConfig())
    assert defaults.handshake_timeout == P2PParams().handshake_timeout
    assert defaults.max_pending_handshakes == P2PParams().max_pending_handshakes
