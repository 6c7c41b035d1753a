"""Simulated networks of 4 and 7 validators: safety under any schedule with at most f
Byzantine validators, liveness once the network heals, no double signing across crashes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import Evidence, Proposal, Vote
from tests.consensus.sim import BEHAVIOURS, CHAIN_ID, Simulator

Operation = tuple[int, str, int]
operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2000),
        st.sampled_from(["partition", "reconnect", "crash", "restart"]),
        st.integers(min_value=0, max_value=2**16),
    ),
    max_size=8,
)
faults = st.lists(st.sampled_from(BEHAVIOURS), max_size=2)


def make_simulator(n: int, seed: int, behaviours: list[str], loss: float) -> Simulator:
    f = (n - 1) // 3
    byzantine = dict(enumerate(behaviours[:f]))
    return Simulator(
        n, seed, byzantine, loss=loss, duplication=0.1, delay=(1, 40), crash_on_persist=0.01
    )


def run_schedule(sim: Simulator, schedule: list[Operation]) -> None:
    """Apply partitions, reconnections, crashes and restarts at their times."""
    honest = [node.index for node in sim.nodes if node.is_honest]
    for time, operation, choice in sorted(schedule):
        sim.run(time)
        rng = random.Random(choice)
        if operation == "partition":
            members = list(range(len(sim.nodes)))
            rng.shuffle(members)
            cut = rng.randint(1, len(members) - 1)
            sim.partition(set(members[:cut]), set(members[cut:]))
        elif operation == "reconnect":
            sim.groups = None
        elif operation == "crash":
            sim.crash(rng.choice(honest))
        else:
            sim.restart(rng.choice(honest))


def check_evidence(sim: Simulator) -> int:
    """Every evidence is two validly signed, conflicting messages for one step."""
    count = 0
    for node in sim.nodes:
        for evidence in node.evidence:
            first, second = evidence.first, evidence.second
            assert first != second and (first.height, first.round) == (second.height, second.round)
            assert is_signed(first) and is_signed(second)
            count += 1
    return count


def is_signed(message: Vote | Proposal) -> bool:
    if isinstance(message, Vote):
        return message.is_signed_by_validator(CHAIN_ID)
    return message.is_signed_by_proposer(CHAIN_ID)


def test_basic() -> None:
    sim = Simulator(4, seed=1)
    sim.run(60_000, heights=10)
    sim.assert_safe()
    assert all(len(node.decisions) >= 10 for node in sim.nodes)
    assert all(round_ == 0 for node in sim.nodes for round_ in node.decided_rounds.values())


@settings(max_examples=100, deadline=None)
@given(
    n=st.sampled_from([4, 7]),
    seed=st.integers(min_value=0, max_value=2**32),
    behaviours=faults,
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    schedule=operations,
)
def test_safety_under_any_schedule(
    n: int, seed: int, behaviours: list[str], loss: float, schedule: list[Operation]
) -> None:
    sim = make_simulator(n, seed, behaviours, loss)
    run_schedule(sim, schedule)
    sim.run(2500)
    sim.assert_safe()
    check_evidence(sim)


@settings(max_examples=60, deadline=None)
@given(
    n=st.sampled_from([4, 7]),
    seed=st.integers(min_value=0, max_value=2**32),
    behaviours=faults,
    loss=st.sampled_from([0.0, 0.2]),
    schedule=operations,
)
def test_liveness_after_heal(
    n: int, seed: int, behaviours: list[str], loss: float, schedule: list[Operation]
) -> None:
    sim = make_simulator(n, seed, behaviours, loss)
    run_schedule(sim, schedule)
    sim.run(2000)
    for node in sim.nodes:
        sim.restart(node.index)
    sim.heal()
    decided_at_heal = max(len(node.decisions) for node in sim.nodes)
    target = decided_at_heal + 4
    sim.run(sim.now + 30_000, heights=target)
    sim.assert_safe()
    honest = [node for node in sim.nodes if node.is_honest]
    assert all(len(node.decisions) >= target for node in honest)
    # heights begun after GST take a bounded number of rounds; with 20 % of messages
    # still lost after the heal a round fails more often (seed 506 took 5 rounds)
    rounds = [
        r for node in honest for h, r in node.decided_rounds.items() if h > decided_at_heal + 1
    ]
    assert max(rounds) <= (4 if loss == 0 else 8)


def test_crash_restart_never_double_signs() -> None:
    """Crashes right after persisting a signature, often: identical re-sends only (the
    simulator asserts one signing root per key and step), and heights still decide."""
    for seed in range(4):
        sim = Simulator(4, seed, crash_on_persist=0.2, delay=(1, 20))
        sim.run(60_000, heights=6)
        sim.assert_safe()
        assert all(len(node.decisions) >= 6 for node in sim.nodes)


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_exactly_f_byzantine_still_decide(n: int, behaviour: str) -> None:
    f = (n - 1) // 3
    sim = Simulator(n, seed=n, byzantine=dict.fromkeys(range(f), behaviour))
    sim.run(60_000, heights=5)
    sim.assert_safe()
    assert all(len(node.decisions) >= 5 for node in sim.nodes if node.is_honest)


@pytest.mark.parametrize("n", [4, 7])
def test_f_plus_one_equivocators_are_noticed(n: int) -> None:
    f = (n - 1) // 3
    behaviours = ["double_voter", "equivocating_proposer"]
    byzantine = {i: behaviours[i % 2] for i in range(f + 1)}
    sim = Simulator(n, seed=3, byzantine=byzantine)
    sim.run(5000, heights=3)
    assert check_evidence(sim) > 0
    accused = {
        e.first.validator if isinstance(e.first, Vote) else e.first.proposer
        for node in sim.nodes
        if node.is_honest
        for e in node.evidence
        if isinstance(e, Evidence)
    }
    assert accused == {sim.keys[i].public_key for i in byzantine}
