"""Issue 11's attacks by an admitted but Byzantine peer, against real node processes:
junk for the next height, floods of next-height proposals and of equivocating votes,
a peer lying about its height, block sync across blocks of thousands of txs, and a
disk that fills up under a validator.

The Byzantine peer borrows a registered node's key while that node is down (a bank
whose node turned hostile); the honest majority keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import consensus as cs
from cli.devnet.testnet import down_testnet, init_testnet, load_manifest, start_node, up_testnet
from ledger.codec import pack
from ledger.crypto import PrivateKey
from node import messages as msg
from node.keyfile import read_key_file
from tests.attack.harness import RawSession, dial
from tests.attack.test_attacks import rss_kb
from tests.node.netutil import FAST, Net, find_free_base, http, running_testnet, wait_for

pytestmark = pytest.mark.slow

BYZANTINE = "wing"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("byzantine")) as running:
        yield running


def labelled(net: Net, name: str, metric: str, label: str) -> float:
    for line in net.metrics(name).splitlines():
        if line.startswith(f"{metric}{{") and f'="{label}"}}' in line:
            return float(line.split()[-1])
    return 0.0


def borrow_key(net: Net, name: str) -> PrivateKey:
    key = read_key_file(net.node_dir(name) / "node_key.json")
    net.kill(name)
    return key


def commit_one(net: Net, via: str = "nbc", timeout: float = 30.0) -> None:
    tx = net.transfer("aclb", "aba", 1)
    code, body = net.submit(via, tx)
    assert code == 202, body
    net.wait_committed(via, [tx.hash.hex()], timeout=timeout)


def proposer_rounds(net: Net, height: int, name: str, rounds: range) -> list[int]:
    validators = sorted(net.validators)
    return [r for r in rounds if validators[(height + r) % len(validators)] == name]


def signed_proposal(key: PrivateKey, chain_id: str, height: int, round_: int) -> bytes:
    return cs.sign_proposal(key, chain_id, height, round_, os.urandom(32), -1).encode()


def live_validators(net: Net) -> list[str]:
    return [n for n in net.validators if n != BYZANTINE]


def test_junk_for_the_next_height_does_not_halt_the_chain(net: Net) -> None:
    key = borrow_key(net, BYZANTINE)
    commit_one(net)
    # A height at which the Byzantine validator proposes one of the next height's first
    # rounds (so that its junk passes every check a next-height message gets).
    while not proposer_rounds(net, net.status("nbc")["height"] + 2, BYZANTINE, range(3)):
        commit_one(net)
    tip = net.status("nbc")["height"]

    async def send_junk() -> None:
        for name in live_validators(net):
            async with dial(net.node(name).p2p_port, key, net.chain_id) as session:
                for round_ in proposer_rounds(net, tip + 2, BYZANTINE, range(3)):
                    proposal = signed_proposal(key, net.chain_id, tip + 2, round_)
                    await session.send(msg.PROPOSAL, [proposal, b"junk", b""])
                await asyncio.sleep(0.2)

    asyncio.run(send_junk())
    for name in live_validators(net):
        assert labelled(net, name, "bakong_next_height_dropped_total", "bad_signature") == 0
    # Block tip+1 commits; the junk comes back at tip+2 and is dropped on its own; the
    # height after it still commits within seconds.
    started = time.monotonic()
    commit_one(net, timeout=20)
    commit_one(net, timeout=20)
    assert time.monotonic() - started < 30
    assert net.status("nbc")["height"] >= tip + 2
    net.up()
    net.wait_converged()


def test_floods_of_next_height_proposals_and_votes_stay_bounded(net: Net) -> None:
    key = borrow_key(net, BYZANTINE)
    target = "nbc"
    commit_one(net)
    tip = net.status(target)["height"]
    rss_before = rss_kb(net, target)
    data = net.node_dir(target) / "data"
    size_before = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    big = os.urandom(7 * 1024 * 1024)  # under the 8 MiB block limit
    huge = os.urandom(10 * 1024 * 1024)  # over it

    async def flood(session: RawSession) -> None:
        # 30 proposals for the next height with 7-10 MiB bodies.
        for i in range(30):
            round_ = i % 3
            proposal = signed_proposal(key, net.chain_id, tip + 2, round_)
            await session.send(msg.PROPOSAL, [proposal, big if i % 2 else huge, b""])
        # 20,000 conflicting votes at the current height, over 100 rounds and both types.
        for i in range(20_000):
            vote_type = cs.VoteType.PREVOTE if i % 2 else cs.VoteType.PRECOMMIT
            vote = cs.sign_vote(
                key, net.chain_id, vote_type, tip + 1, (i // 2) % 100, os.urandom(32)
            )
            await session.send(msg.VOTE, vote.encode())
        peak = rss_kb(net, target)
        assert peak - rss_before < 120 * 1024, (rss_before, peak)

    async def attack() -> None:
        async with dial(net.node(target).p2p_port, key, net.chain_id) as session:
            await flood(session)
            # the node is still there and answering
            await session.send(msg.GET_BLOCKS, [tip, 1])
            async with asyncio.timeout(30):
                while (await session.receive())[0] != msg.BLOCKS:
                    pass

    asyncio.run(attack())
    stored = labelled(net, target, "bakong_evidence_events_total", "stored")
    duplicates = labelled(net, target, "bakong_evidence_events_total", "duplicates")
    # One record per (round, vote type): 100 rounds x 2; the rest are duplicates.
    assert 0 < stored <= 200, stored
    assert stored + duplicates <= 20_000
    assert labelled(net, target, "bakong_next_height_dropped_total", "too_large") >= 1
    rss_after = rss_kb(net, target)
    assert rss_after - rss_before < 80 * 1024, (rss_before, rss_after)
    size_after = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    assert size_after - size_before < 2 * 1024 * 1024, (size_before, size_after)
    commit_one(net)
    net.up()
    net.wait_converged()


def test_a_peer_lying_about_its_height_does_not_stop_catch_up(net: Net) -> None:
    liar_key = borrow_key(net, "canadia")
    lagging = "aba"
    net.kill(lagging)
    for _ in range(10):
        commit_one(net)
    goal = net.status("nbc")["height"]
    asked: list[int] = []

    async def lie() -> None:
        # Start the lagging node and, as soon as it listens, tell it the chain is at
        # 2**63-1; never answer its requests.
        start_node(net.node_dir(lagging))
        port = net.node(lagging).p2p_port
        async with asyncio.timeout(60):
            while True:
                try:
                    session_cm = dial(port, liar_key, net.chain_id)
                    session = await session_cm.__aenter__()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                await session.send(msg.STATUS, [2**63 - 1, b"\x00" * 32])
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        kind, payload = await session.receive()
                        if kind == msg.GET_BLOCKS:
                            asked.append(payload[0])
                status = await asyncio.to_thread(net.status, lagging)
                if status and status["height"] >= goal:
                    return
            raise AssertionError("the lagging node did not catch up while lied to")
        finally:
            await session_cm.__aexit__(None, None, None)

    asyncio.run(lie())
    assert net.status(lagging)["height"] >= goal
    net.up()
    net.wait_converged()


def _set_limits(home: Path, max_frame_bytes: int, max_block_bytes: int) -> None:
    for path in (home / "nodes").glob("*/node.toml"):
        text = path.read_text()
        text = re.sub(r"max_frame_bytes = \d+", f"max_frame_bytes = {max_frame_bytes}", text)
        text = re.sub(r"max_block_bytes = \d+", f"max_block_bytes = {max_block_bytes}", text)
        path.write_text(text)


def test_sync_catches_up_across_blocks_of_thousands_of_txs(tmp_path: Path) -> None:
    """Frames of 1 MiB and blocks of ~3,000 txs (~550 KB): a 50-block reply would be far
    over the frame, which stalled sync forever; replies are now bounded by bytes."""
    home = tmp_path / "testnet"
    # A pause between blocks lets each wave of txs gather into one big block.
    consensus = replace(FAST, timeout_commit_ms=2_000)
    init_testnet(home, validators=4, observers=1, base_port=find_free_base(10), consensus=consensus)
    _set_limits(home, 1024 * 1024, 800 * 1024)
    net = Net(home, load_manifest(home))
    try:
        up_testnet(home, timeout=90)
        net.kill("canadia")
        pairs = [("aclb", "aba"), ("aba", "wing"), ("wing", "aclb")]
        for _wave in range(3):
            txs = [net.transfer(*pairs[i % 3], 1) for i in range(2_997)]
            body = pack([tx.encode() for tx in txs])
            code, answer = http(
                net.url("nbc") + "/v1/transactions/batch", body, "application/msgpack", timeout=60
            )
            assert code == 200 and all("error" not in r for r in answer["results"]), answer
            net.wait_committed("nbc", [tx.hash.hex() for tx in txs[-3:]], timeout=120)
        code, blocks = http(net.url("nbc") + "/v1/blocks?limit=50")
        assert max(b["txs"] for b in blocks["blocks"]) >= 2_500, blocks
        up_testnet(home, timeout=90)
        net.wait_converged(timeout=120)
    finally:
        down_testnet(home, grace=5.0)


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs: needs root")
def test_full_disk_stops_a_validator_loudly_and_a_restart_resumes(tmp_path: Path) -> None:
    with running_testnet(tmp_path) as net:
        victim = "aclb"
        commit_one(net, via="nbc")
        net.kill(victim)
        data = net.node_dir(victim) / "data"
        saved = tmp_path / "saved-data"
        shutil.copytree(data, saved)
        used = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
        mount = ["mount", "-t", "tmpfs", "-o", f"size={used + 8 * 1024 * 1024}", "tmpfs", str(data)]
        subprocess.run(mount, check=True)
        filler = data / "filler"
        try:
            shutil.copytree(saved, data, dirs_exist_ok=True)
            pid = start_node(net.node_dir(victim))
            wait_for(lambda: net.status(victim) is not None, 30, "the victim serving")
            # Fill the disk, then give it work.
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
            for _ in range(5):
                commit_one(net, via="nbc")
            [status] = wait_for(lambda: _exit_status(pid), 60, "the victim to exit")
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0, status
            out = (net.node_dir(victim) / "node.out").read_text()
            assert "error: node_failed: consensus stopped" in out, out[-2000:]
            # Room again: a restart resumes from the store and catches up.
            filler.unlink()
            net.up()
            commit_one(net, via=victim)
            net.wait_converged()
        finally:
            with contextlib.suppress(Exception):
                net.kill(victim)
            subprocess.run(["umount", "-l", str(data)], check=False)


def _exit_status(pid: int) -> list[int] | None:
    """[wait status] once our child `pid` has exited (a list: a status of 0 is one too)."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return [status] if waited == pid else None
