"""The faults and their schedule: one fault at a time, each for a few seconds, then
healed, then a quiet spell in which the chain must recover.

    partition  halves        a random split of the nodes in two (2 | 3)
               majority      one validator (maybe with the observer) cut off from the rest
               proposer      the next block's proposer isolated
               bridge        two sides that each see only one middle node
               ring          every node sees only its two neighbours in a random ring
    kill       kill -9 of a node, restarted at the heal
    pause      SIGSTOP of a node, SIGCONT at the heal
    skew       a validator restarted with its clock far ahead, far behind, or ahead
               within the allowed skew; restarted with the right time at the heal
    disk       a node's data directory (a tmpfs) filled; at the heal the node must have
               stopped loudly, gets its space back, is restarted and catches up

Each start and heal is a `nemesis` record of the history; a start says whether the
fault leaves 2f+1 validators up, connected and with agreeing clocks (`keeps_quorum`),
in which case the chain must keep committing through it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from cli.devnet.nemesis.cluster import Cluster
from cli.devnet.nemesis.history import History
from cli.devnet.nemesis.netns import groups_to_blocked
from cli.devnet.nemesis.workload import Observer

FAULT_KINDS: Final = ("partition", "kill", "pause", "skew", "disk")
PARTITIONS: Final = ("halves", "majority", "proposer", "bridge", "ring")
_RESTART_TIMEOUT_S: Final = 60.0
_DISK_EXIT_TIMEOUT_S: Final = 30.0


@dataclass
class Fault:
    id: int
    kind: str
    variant: str
    nodes: list[str]
    blocked: dict[str, set[str]] = field(default_factory=dict)
    skew_ms: int = 0
    keeps_quorum: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def quorum_size(validators: int) -> int:
    """2f+1 of n = 3f+1 (integer: more than two thirds)."""
    return validators * 2 // 3 + 1


def keeps_quorum(
    validators: Sequence[str], down: Collection[str], blocked: Mapping[str, Collection[str]]
) -> bool:
    """Whether 2f+1 validators are up and every pair of them is connected."""
    up = [v for v in validators if v not in down]
    need = quorum_size(len(validators))
    for group in itertools.combinations(up, need):
        if all(b not in blocked.get(a, ()) for a, b in itertools.combinations(group, 2)):
            return True
    return False


class Nemesis:
    def __init__(
        self,
        cluster: Cluster,
        history: History,
        observer: Observer,
        rng: random.Random,
        *,
        max_clock_skew_ms: int,
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.observer = observer
        self.rng = rng
        self.max_skew_ms = max_clock_skew_ms
        self._ids = itertools.count(1)
        self.active: Fault | None = None
        self.counts: Counter[str] = Counter()

    # planning

    def plan(self, kind: str) -> Fault:
        names = self.cluster.names
        validators = self.cluster.validators
        fid = next(self._ids)
        if kind == "partition":
            variant = PARTITIONS[self.counts["partition"] % len(PARTITIONS)]
            groups = self._partition_groups(variant)
            blocked = groups_to_blocked(groups)
            isolated = sorted(n for n, cut in blocked.items() if cut)
            fault = Fault(fid, kind, variant, isolated, blocked=blocked)
            fault.details["groups"] = [sorted(g) for g in groups]
            fault.keeps_quorum = keeps_quorum(validators, (), blocked)
        elif kind in ("kill", "pause", "disk"):
            victim = self.rng.choice(names)
            fault = Fault(fid, kind, kind, [victim])
            fault.keeps_quorum = keeps_quorum(validators, {victim}, {})
        elif kind == "skew":
            victim = self.rng.choice(validators)
            far = self.max_skew_ms + 30_000
            options = [("ahead", far), ("behind", -far), ("ahead_within", self.max_skew_ms // 2)]
            variant, skew = options[self.counts["skew"] % len(options)]
            fault = Fault(fid, kind, variant, [victim], skew_ms=skew)
            # counted as down: a clock far behind refuses every honest block
            fault.keeps_quorum = keeps_quorum(validators, {victim}, {})
        else:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        self.counts[kind] += 1
        return fault

    def _partition_groups(self, variant: str) -> list[list[str]]:
        names = list(self.cluster.names)
        self.rng.shuffle(names)
        if variant == "halves":
            cut = len(names) // 2
            return [names[:cut], names[cut:]]
        if variant == "majority":
            validators = list(self.cluster.validators)
            minority = [self.rng.choice(validators)]
            observers = [n for n in names if n not in validators]
            if observers and self.rng.random() < 0.5:
                minority.append(self.rng.choice(observers))
            return [minority, [n for n in names if n not in minority]]
        if variant == "proposer":
            proposer = self.find_next_proposer()
            return [[proposer], [n for n in names if n != proposer]]
        if variant == "bridge":
            middle = names[0]
            rest = names[1:]
            half = len(rest) // 2
            return [[*rest[:half], middle], [middle, *rest[half:]]]
        if variant == "ring":
            return [[names[i], names[(i + 1) % len(names)]] for i in range(len(names))]
        raise ValueError(f"unknown partition {variant!r}")

    def find_next_proposer(self) -> str:
        """The proposer of the round now running at the next height: rotation by
        (height + round) over the validator list, whose order is learned from recent
        blocks (proposer and commit round); else the last block's proposer."""
        views = self.observer.snapshot()
        for name in views:  # fresher than the observer's last poll: blocks come fast
            status = self.cluster.status(name, timeout=0.5)
            if status is not None:
                views[name] = replace(
                    views[name], height=status.get("height"), round=status.get("round")
                )
        heights = [v.height for v in views.values() if v.height is not None]
        validators = self.cluster.validators
        if not heights:
            return self.rng.choice(validators)
        tip = max(heights)
        rounds = [v.round for v in views.values() if v.height == tip and v.round is not None]
        current_round = Counter(rounds).most_common(1)[0][0] if rounds else 0
        source = next(n for n, v in views.items() if v.height == tip)
        order: dict[int, str] = {}
        last = None
        for height in range(max(1, tip - 7), tip + 1):
            block = self.cluster.get(source, f"/v1/blocks/{height}", timeout=2.0)
            if not isinstance(block, dict) or not isinstance(block.get("commit"), dict):
                continue
            round_ = block["commit"].get("round", 0)
            order[(height + round_) % len(validators)] = block["proposer"]
            last = block["proposer"]
        guess = order.get((tip + 1 + current_round) % len(validators))
        if guess in validators:
            return guess
        return last if last in validators else self.rng.choice(validators)

    # starting and healing

    def start(self, fault: Fault) -> None:
        c = self.cluster
        victim = fault.nodes[0] if fault.nodes else None
        if fault.kind == "partition":
            c.set_blocked(fault.blocked)
        elif fault.kind == "kill" and victim:
            c.kill(victim)
        elif fault.kind == "pause" and victim:
            c.pause(victim)
        elif fault.kind == "skew" and victim:
            c.stop(victim)
            c.start(victim, skew_ms=fault.skew_ms)
            fault.details["serving"] = self._wait_serving(victim)
        elif fault.kind == "disk" and victim:
            fault.details["filled_bytes"] = c.fill_disk(victim)
        self.active = fault
        self.history.add(
            "nemesis",
            f="start",
            id=fault.id,
            fault=fault.kind,
            variant=fault.variant,
            nodes=fault.nodes,
            keeps_quorum=fault.keeps_quorum,
            value={"skew_ms": fault.skew_ms, **fault.details},
        )

    def stop(self, fault: Fault) -> None:
        c = self.cluster
        victim = fault.nodes[0] if fault.nodes else None
        value: dict[str, Any] = {}
        if fault.kind == "partition":
            c.heal_network()
        elif fault.kind == "kill" and victim:
            c.start(victim)
        elif fault.kind == "pause" and victim:
            c.resume(victim)
        elif fault.kind == "skew" and victim:
            c.stop(victim)
            c.start(victim)
        elif fault.kind == "disk" and victim:
            value = self._heal_disk(victim)
        self.active = None
        self.history.add(
            "nemesis",
            f="stop",
            id=fault.id,
            fault=fault.kind,
            variant=fault.variant,
            nodes=fault.nodes,
            value=value,
        )
        if victim and fault.kind in ("kill", "skew"):
            self._wait_serving(victim)

    def _heal_disk(self, victim: str) -> dict[str, Any]:
        c = self.cluster
        status = c.wait_exit(victim, _DISK_EXIT_TIMEOUT_S)
        value: dict[str, Any] = {"exited": status is not None}
        if status is None:
            c.kill(victim)  # it did not stop: the check says so; go on with a fresh start
        else:
            value["exit_code"] = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            value["signal"] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        value["output"] = c.new_output(victim)[-4000:]
        c.free_disk(victim)
        c.start(victim)
        value["restarted"] = self._wait_serving(victim)
        return value

    def _wait_serving(self, name: str) -> bool:
        deadline = time.monotonic() + _RESTART_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.cluster.status(name) is not None:
                return True
            if not self.cluster.is_running(name):
                return False
            time.sleep(0.1)
        return False

    def heal_all(self) -> None:
        """Whatever is active, healed; every node running, unpaused, without skew, with
        space, and the network whole. Safe to call at any time, more than once."""
        if self.active is not None:
            fault, self.active = self.active, None
            with contextlib.suppress(Exception):
                self.stop(fault)
        c = self.cluster
        c.heal_network()
        for name, node in c.nodes.items():
            c.resume(name)
            with contextlib.suppress(OSError):
                c.free_disk(name)
            if node.skew_ms:
                c.stop(name)
            if not c.is_running(name):
                c.start(name)

    # the schedule

    def run(
        self,
        kinds: Sequence[str],
        until: float,
        *,
        fault_s: tuple[float, float],
        quiet_s: tuple[float, float],
        stop: threading.Event,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """Faults one after another until the monotonic time `until`: each kind in turn
        (in an order shuffled per cycle), a fault lasting `fault_s`, a quiet gap of
        `quiet_s` after its heal. A fault always heals, even when time is up."""
        cycle: list[str] = []
        while not stop.is_set():
            if not cycle:
                cycle = list(kinds)
                self.rng.shuffle(cycle)
            length = self.rng.uniform(*fault_s)
            if now() + length > until:
                break
            fault = self.plan(cycle.pop())
            self.start(fault)
            try:
                stop.wait(max(0.0, length))
            finally:
                self.stop(fault)
            stop.wait(self.rng.uniform(*quiet_s))
