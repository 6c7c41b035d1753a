"""The nemesis's fault planning, without nodes: which faults keep a quorum, and the shape
of each partition (halves, one validator cut off, the proposer isolated, a bridge, a ring)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cli.devnet.nemesis.faults import PARTITIONS, Nemesis, keeps_quorum, quorum_size
from cli.devnet.nemesis.workload import NodeView

VALIDATORS = ["nbc", "aclb", "aba", "wing"]
NAMES = [*VALIDATORS, "canadia"]


def test_quorum_sizes() -> None:
    assert [quorum_size(n) for n in (1, 3, 4, 5, 7, 10)] == [1, 3, 3, 4, 5, 7]


def test_keeps_quorum() -> None:
    assert keeps_quorum(VALIDATORS, (), {})
    assert keeps_quorum(VALIDATORS, {"wing"}, {})
    assert not keeps_quorum(VALIDATORS, {"wing", "aba"}, {})
    # 2 | 2 validators: neither side has three
    halves = {"nbc": {"aba", "wing"}, "aclb": {"aba", "wing"}, "aba": {"nbc", "aclb"},
              "wing": {"nbc", "aclb"}}  # fmt: skip
    assert not keeps_quorum(VALIDATORS, (), halves)
    # one cut off: the other three still form a clique
    assert keeps_quorum(VALIDATORS, (), {"wing": set(VALIDATORS[:3]), "nbc": {"wing"}})


class FakeCluster:
    names = NAMES
    validators = VALIDATORS

    def __init__(self, blocks: dict[int, dict[str, Any]]) -> None:
        self.blocks = blocks

    def status(self, name: str, timeout: float = 1.0) -> dict[str, Any]:
        return {"height": 10, "round": 1}

    def get(self, name: str, path: str, timeout: float = 5.0) -> Any:
        return self.blocks.get(int(path.rsplit("/", 1)[1]))


class FakeObserver:
    def snapshot(self) -> dict[str, NodeView]:
        return {name: NodeView(height=10, round=1) for name in NAMES}


def make_nemesis(seed: int = 0) -> Nemesis:
    # rotation (height + round) % 4 over nbc, aclb, aba, wing, every block in round 0
    blocks = {h: {"proposer": VALIDATORS[h % 4], "commit": {"round": 0}} for h in range(1, 11)}
    cluster: Any = FakeCluster(blocks)
    observer: Any = FakeObserver()
    return Nemesis(cluster, None, observer, random.Random(seed), max_clock_skew_ms=60_000)  # type: ignore[arg-type]


def test_the_next_proposer_is_found_from_the_rotation() -> None:
    # height 11, round 1: index (11 + 1) % 4 = 0
    assert make_nemesis().find_next_proposer() == "nbc"


@pytest.mark.parametrize("seed", range(5))
def test_partitions_have_their_shapes(seed: int) -> None:
    nemesis = make_nemesis(seed)
    faults = {}
    for _ in PARTITIONS:
        fault = nemesis.plan("partition")
        faults[fault.variant] = fault
    assert set(faults) == set(PARTITIONS)
    halves = faults["halves"].details["groups"]
    assert sorted(len(g) for g in halves) == [2, 3]
    minority = min(faults["majority"].details["groups"], key=len)
    assert len([n for n in minority if n in VALIDATORS]) == 1
    assert faults["majority"].keeps_quorum
    assert faults["proposer"].details["groups"][0] == ["nbc"]
    assert faults["proposer"].keeps_quorum
    left, right = faults["bridge"].details["groups"]
    [middle] = set(left) & set(right)
    assert faults["bridge"].blocked[middle] == set()
    assert all(faults["bridge"].blocked[n] for n in NAMES if n != middle)
    ring = faults["ring"].blocked
    assert all(len(NAMES) - 1 - len(ring[n]) == 2 for n in NAMES)
    # a ring of five has no triangle: no three validators all connected
    assert not faults["ring"].keeps_quorum


def test_single_node_faults_keep_a_quorum_and_skews_cycle() -> None:
    nemesis = make_nemesis()
    for kind in ("kill", "pause", "disk"):
        fault = nemesis.plan(kind)
        assert len(fault.nodes) == 1 and fault.keeps_quorum
    skews = [nemesis.plan("skew") for _ in range(3)]
    assert [f.variant for f in skews] == ["ahead", "behind", "ahead_within"]
    assert skews[0].skew_ms > 60_000 and skews[1].skew_ms < -60_000
    assert 0 < skews[2].skew_ms < 60_000
    assert all(f.nodes[0] in VALIDATORS for f in skews)
    with pytest.raises(ValueError, match="unknown fault"):
        nemesis.plan("meteor")
