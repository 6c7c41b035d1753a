"""The nemesis checker on doctored runs: a small consistent run passes every check, and
each planted violation (a lost acked tx, a double apply, a wrong total, a read the chain
does not give, a fork, no convergence, a slow recovery, a stall under a fault that kept
a quorum, a bad block time, a quiet disk failure, a failed tx that committed, a phantom
tx, an empty run) is reported by the check meant for it. No nodes: pure data."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cli.devnet.nemesis.checker import CHECKS, Params, RunData, check, failed_checks

ACCOUNTS = ["jepsen0@aba", "jepsen1@aclb", "jepsen2@wing"]
WALL0 = 1_700_000_000_000


class Builder:
    """A consistent little run: baseline at height 2, transfers at heights 3-5, reads,
    observations of two nodes, a partition keeping a quorum and a disk fault."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.t = 0.0

    def add(self, type_: str, dt: float = 0.1, **fields: Any) -> dict[str, Any]:
        self.t = round(self.t + dt, 3)
        record = {"t": self.t, "wall_ms": WALL0 + int(self.t * 1000), "type": type_, **fields}
        self.records.append(record)
        return record

    def observe(self, height: int, dt: float = 0.1) -> None:
        for node in ("n1", "n2"):
            self.add("observe", dt=dt if node == "n1" else 0.0, node=node, height=height,
                     block_hash=f"h{height}")  # fmt: skip

    def transfer(self, type_: str, tx: str, src: int, dst: int, amount: int, **extra: Any) -> None:
        value = {"hash": tx, "from": ACCOUNTS[src], "to": ACCOUNTS[dst], "amount": amount}
        self.add("invoke", process=0, f="transfer", node="n1", value=value)
        self.add(type_, process=0, f="transfer", node="n1", value={**value, **extra})

    def read(self, height: int, balances: list[int]) -> None:
        self.add("invoke", process=1, f="read", node="n2")
        value = {"height": height, "balances": dict(zip(ACCOUNTS, balances, strict=True))}
        self.add("ok", process=1, f="read", node="n2", value=value)


def make_run() -> RunData:
    b = Builder()
    baseline = {"height": 2, "balances": dict.fromkeys(ACCOUNTS, 100)}
    b.add("setup", f="accounts", value={"accounts": ACCOUNTS, "total": 300, "baseline": baseline})
    b.observe(2)
    b.transfer("ok", "t1", 0, 1, 10, height=3)
    b.observe(3)
    b.read(3, [90, 110, 100])
    # a partition that keeps a quorum: the chain commits through it
    b.add("nemesis", f="start", id=1, fault="partition", variant="majority", nodes=["n2"],
          keeps_quorum=True)  # fmt: skip
    b.transfer("ok", "t2", 1, 2, 5, height=4)
    b.observe(4, dt=2.0)
    b.add("nemesis", f="stop", id=1, fault="partition", variant="majority", nodes=["n2"],
          dt=3.0, value={})  # fmt: skip
    b.transfer("info", "t3", 2, 0, 7)  # unknown to the client; it did commit at 5
    b.observe(5, dt=0.5)
    b.transfer("fail", "t4", 0, 2, 1, error="nonce_taken")
    b.read(5, [97, 105, 98])
    b.add("nemesis", f="start", id=2, fault="disk", variant="disk", nodes=["n1"],
          keeps_quorum=True)  # fmt: skip
    b.observe(6, dt=1.0)
    disk = {"exited": True, "exit_code": 1, "signal": None, "restarted": True,
            "output": "error: node_failed: consensus stopped: IO error: no space\n"}  # fmt: skip
    b.add("nemesis", f="stop", id=2, fault="disk", variant="disk", nodes=["n1"], dt=4.0,
          value=disk)  # fmt: skip
    b.observe(7, dt=0.3)
    final_status = {"height": 7, "block_hash": "h7", "state_hash": "s7"}
    final = {"converged": True, "converge_s": 0.1,
             "statuses": {"n1": final_status, "n2": dict(final_status)}}  # fmt: skip
    txs = {1: ["setup-a"], 2: ["setup-b"], 3: ["t1"], 4: ["t2"], 5: ["t3"], 6: [], 7: []}
    blocks = {
        h: {"hash": f"h{h}", "time": WALL0 + h * 100, "proposer": "n1", "txs": t}
        for h, t in txs.items()
    }
    chains = {node: {h: f"h{h}" for h in blocks} for node in ("n1", "n2")}
    return RunData(b.records, chains, blocks, final)


PARAMS = Params(max_clock_skew_ms=60_000, liveness_bound_s=5.0, progress_window_s=4.0)


def verdicts(data: RunData) -> dict[str, Any]:
    result: dict[str, Any] = check(data, PARAMS)["checks"]
    return result


def anomaly_kinds(data: RunData, name: str) -> list[str]:
    return [a["kind"] for a in verdicts(data)[name]["anomalies"]]


def doctored() -> RunData:
    return copy.deepcopy(make_run())


def test_the_consistent_run_passes_every_check() -> None:
    result = check(make_run(), PARAMS)
    assert failed_checks(result) == [], result
    assert result["valid"]
    # every check looked at something: none passes on nothing
    assert all(v["checked"] > 0 for v in result["checks"].values()), result["checks"]
    assert set(result["checks"]) == set(CHECKS)
    assert result["summary"]["transfers_acknowledged"] == 2
    assert result["summary"]["transfers_unknown"] == 1


def test_a_lost_acknowledged_tx_is_reported() -> None:
    data = doctored()
    data.blocks[4]["txs"] = []
    assert "lost" in anomaly_kinds(data, "acked_txs_committed_once")
    assert not check(data, PARAMS)["valid"]


def test_a_tx_applied_twice_is_reported() -> None:
    data = doctored()
    data.blocks[6]["txs"] = ["t1"]
    assert "applied_twice" in anomaly_kinds(data, "acked_txs_committed_once")
    assert "applied_twice" in anomaly_kinds(data, "no_tx_applied_twice")


def test_an_unknown_tx_applied_twice_is_reported() -> None:
    data = doctored()
    data.blocks[6]["txs"] = ["t3"]  # an `info` op: may commit once, never twice
    assert anomaly_kinds(data, "no_tx_applied_twice") == ["applied_twice"]
    assert verdicts(data)["acked_txs_committed_once"]["valid"]


def test_an_acked_tx_at_another_height_is_reported() -> None:
    data = doctored()
    data.blocks[3]["txs"], data.blocks[6]["txs"] = [], ["t1"]
    assert "wrong_height" in anomaly_kinds(data, "acked_txs_committed_once")


def test_a_failed_tx_in_the_chain_is_reported() -> None:
    data = doctored()
    data.blocks[6]["txs"] = ["t4"]
    assert anomaly_kinds(data, "failed_txs_not_committed") == ["failed_but_committed"]


def test_a_tx_nobody_invoked_is_reported() -> None:
    data = doctored()
    data.blocks[6]["txs"] = ["forged"]
    assert anomaly_kinds(data, "no_phantom_txs") == ["phantom"]


def test_a_read_with_a_wrong_total_is_reported() -> None:
    data = doctored()
    read = next(r for r in data.records if r["type"] == "ok" and r["f"] == "read")
    read["value"]["balances"][ACCOUNTS[0]] += 1
    assert anomaly_kinds(data, "reads_sum_to_total") == ["wrong_total"]


def test_a_negative_balance_is_reported() -> None:
    data = doctored()
    read = next(r for r in data.records if r["type"] == "ok" and r["f"] == "read")
    read["value"]["balances"][ACCOUNTS[0]] = -1
    read["value"]["balances"][ACCOUNTS[1]] = 201
    assert anomaly_kinds(data, "reads_sum_to_total") == ["negative_balance"]


def test_a_read_the_chain_does_not_give_is_reported_even_with_the_right_total() -> None:
    data = doctored()
    read = next(r for r in data.records if r["type"] == "ok" and r["f"] == "read")
    read["value"]["balances"][ACCOUNTS[0]] -= 3
    read["value"]["balances"][ACCOUNTS[1]] += 3
    assert verdicts(data)["reads_sum_to_total"]["valid"]
    assert anomaly_kinds(data, "reads_match_chain") == ["read_differs"]


def test_a_fork_between_the_nodes_chains_is_reported() -> None:
    data = doctored()
    data.chains["n2"][5] = "other"
    assert anomaly_kinds(data, "no_forks") == ["fork"]
    [anomaly] = verdicts(data)["no_forks"]["anomalies"]
    assert anomaly["height"] == 5 and set(anomaly["blocks"]) == {"h5", "other"}


def test_a_fork_seen_only_in_a_status_during_the_run_is_reported() -> None:
    data = doctored()
    data.records.append({"t": 9.0, "wall_ms": WALL0 + 9000, "type": "observe", "node": "n2",
                         "height": 4, "block_hash": "other"})  # fmt: skip
    assert anomaly_kinds(data, "no_forks") == ["fork"]


def test_nodes_that_did_not_converge_are_reported() -> None:
    data = doctored()
    data.final["converged"] = False
    data.final["statuses"]["n2"] = {"height": 6, "block_hash": "h6", "state_hash": "s6"}
    assert "not_converged" in anomaly_kinds(data, "converged")


def test_a_node_whose_chain_is_short_is_reported() -> None:
    data = doctored()
    del data.chains["n2"][7]
    assert anomaly_kinds(data, "converged") == ["behind"]


def test_chains_read_after_convergence_may_have_grown_unevenly() -> None:
    data = doctored()
    # the heartbeat committed height 8 while the chains were read: n1 was read later
    data.blocks[8] = {"hash": "h8", "time": WALL0 + 800, "proposer": "n1", "txs": []}
    data.chains["n1"][8] = "h8"
    assert verdicts(data)["converged"]["valid"]


def test_a_slow_recovery_after_a_heal_is_reported() -> None:
    data = doctored()
    # nothing commits for 6 s after the disk fault heals (bound 5 s)
    last = data.records[-1]
    assert last["type"] == "observe" and last["height"] == 7
    for r in data.records[-2:]:
        r["t"] += 6.0
    kinds = anomaly_kinds(data, "liveness_after_heal")
    assert kinds == ["slow_recovery"]
    [anomaly] = verdicts(data)["liveness_after_heal"]["anomalies"]
    assert anomaly["fault"] == "disk" and anomaly["first_commit_after_s"] > 5.0


def test_no_commit_at_all_after_a_heal_is_reported() -> None:
    data = doctored()
    data.records = data.records[:-2]  # the last observations are gone
    assert "slow_recovery" in anomaly_kinds(data, "liveness_after_heal")


def test_a_fault_never_healed_is_reported() -> None:
    data = doctored()
    data.records = [r for r in data.records if not (r["type"] == "nemesis" and r["id"] == 2
                                                    and r["f"] == "stop")]  # fmt: skip
    assert "never_healed" in anomaly_kinds(data, "liveness_after_heal")


def test_a_stall_while_a_quorum_was_kept_is_reported() -> None:
    data = doctored()
    # the commit of height 4 happened inside the partition window: move it after
    for r in data.records:
        if r["type"] == "observe" and r["height"] == 4:
            r["t"] += 3.1
    assert anomaly_kinds(data, "progress_during_faults") == ["stalled"]


def test_a_stall_is_not_a_violation_when_the_fault_broke_the_quorum() -> None:
    data = doctored()
    for r in data.records:
        if r["type"] == "observe" and r["height"] == 4:
            r["t"] += 3.1
        if r["type"] == "nemesis" and r["id"] == 1 and r["f"] == "start":
            r["keeps_quorum"] = False
    assert verdicts(data)["progress_during_faults"]["valid"]


def test_a_block_dated_beyond_the_allowed_skew_is_reported() -> None:
    data = doctored()
    data.blocks[5]["time"] = WALL0 + 20_000 + 90_000  # 90 s after it was first seen
    data.blocks[6]["time"] = data.blocks[7]["time"] = data.blocks[5]["time"]
    assert set(anomaly_kinds(data, "block_times")) == {"time_in_future"}
    anomalies = verdicts(data)["block_times"]["anomalies"]
    assert anomalies[0]["height"] == 5 and anomalies[0]["ahead_ms"] > 60_000


def test_a_block_time_going_back_is_reported() -> None:
    data = doctored()
    data.blocks[6]["time"] = data.blocks[5]["time"] - 1
    assert anomaly_kinds(data, "block_times") == ["time_went_back"]


@pytest.mark.parametrize(
    "change",
    [
        {"exit_code": 0},
        {"exited": False, "exit_code": None},
        {"output": "Traceback (most recent call last):\n  ...\nOSError: [Errno 28]\n"},
        {"output": ""},
        {"restarted": False},
    ],
    ids=["exit-0", "never-exited", "traceback", "silent", "no-restart"],
)
def test_a_disk_failure_that_is_not_loud_is_reported(change: dict[str, Any]) -> None:
    data = doctored()
    stop = next(r for r in data.records if r["type"] == "nemesis" and r["f"] == "stop"
                and r["fault"] == "disk")  # fmt: skip
    stop["value"].update(change)
    assert anomaly_kinds(data, "disk_full_stops_loudly") == ["not_loud"]


def test_an_empty_run_does_not_pass() -> None:
    data = doctored()
    data.records = [r for r in data.records if r["type"] not in ("ok",)]
    result = check(data, PARAMS)
    assert not result["valid"]
    assert {"workload", "acked_txs_committed_once", "reads_sum_to_total"} <= set(
        failed_checks(result)
    )
    assert "nothing to check" in result["checks"]["acked_txs_committed_once"]["why"]


def test_a_client_error_is_reported() -> None:
    data = doctored()
    data.records.append({"t": 9.0, "wall_ms": WALL0, "type": "client_error", "process": 0,
                         "error": "KeyError('nonce')"})  # fmt: skip
    assert anomaly_kinds(data, "workload") == ["client_error"]


def test_a_failure_of_the_nemesis_itself_is_reported() -> None:
    data = doctored()
    data.records.append({"t": 9.0, "wall_ms": WALL0, "type": "nemesis_error",
                         "error": "OSError(28, 'No space left on device')"})  # fmt: skip
    assert anomaly_kinds(data, "nemesis_ran_cleanly") == ["nemesis_error"]
    assert not check(data, PARAMS)["valid"]
