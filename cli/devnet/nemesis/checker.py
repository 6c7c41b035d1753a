"""The checks of a nemesis run: pure functions over the history and the nodes' chains.

`RunData` is everything a verdict rests on:
- `records`: the history (see `history`), clients' operations, faults, observations;
- `chains`: per node, height -> block hash, read from every node at the end;
- `blocks`: the agreed chain's blocks (height -> hash, time, proposer, tx hashes);
- `final`: what the end of the run saw (did the nodes converge, and their statuses).

`check(data, params)` returns one verdict per check:
    {"valid": bool, "checked": n, "anomaly_count": k, "anomalies": [...first 50]}
and the run is valid when every check is. Tests plant each kind of violation in a
doctored run and assert the check reports it (tests/nemesis/test_checker.py), so a
check cannot pass vacuously.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

MAX_LISTED: Final = 50
DEFAULT_LIVENESS_BOUND_S: Final = 5.0
# A fault that keeps a quorum must see a commit within its window if the window lasts
# at least this long (a round or two of timeouts, plus the observer's poll).
DEFAULT_PROGRESS_WINDOW_S: Final = 4.0
# Slack on the block-time bound for the observer's poll and the machine's scheduling.
_TIME_SLACK_MS: Final = 1_000

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Params:
    max_clock_skew_ms: int = 60_000
    liveness_bound_s: float = DEFAULT_LIVENESS_BOUND_S
    progress_window_s: float = DEFAULT_PROGRESS_WINDOW_S


@dataclass
class RunData:
    records: list[Record]
    chains: dict[str, dict[int, str]]
    blocks: dict[int, dict[str, Any]]
    final: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    checked: int = 0
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    # a check with nothing to check is not a pass unless it says it may be empty
    may_be_empty: bool = False

    @property
    def valid(self) -> bool:
        return not self.anomalies and (self.checked > 0 or self.may_be_empty)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "valid": self.valid,
            "checked": self.checked,
            "anomaly_count": len(self.anomalies),
            "anomalies": self.anomalies[:MAX_LISTED],
        }
        if self.checked == 0 and not self.may_be_empty:
            out["why"] = "nothing to check: the run did not exercise this"
        out.update(self.notes)
        return out


# ---------------------------------------------------------------------------------------
# helpers over the history


def _setup(data: RunData) -> dict[str, Any]:
    for record in data.records:
        if record["type"] == "setup":
            value: dict[str, Any] = record["value"]
            return value
    raise ValueError("the history has no setup record")


def _ops(data: RunData, type_: str, f: str) -> list[Record]:
    return [r for r in data.records if r["type"] == type_ and r.get("f") == f]


def _tx_heights(data: RunData) -> dict[str, list[int]]:
    """Every tx hash of the agreed chain -> the heights it is in."""
    found: dict[str, list[int]] = defaultdict(list)
    for height, block in sorted(data.blocks.items()):
        for tx_hash in block.get("txs", []):
            found[tx_hash].append(height)
    return found


def _observations(data: RunData) -> list[Record]:
    return [r for r in data.records if r["type"] == "observe" and r.get("height") is not None]


def _faults(data: RunData) -> list[tuple[Record, Record | None]]:
    """(start, stop) of every fault; stop None if it never healed."""
    starts: dict[Any, Record] = {}
    stops: dict[Any, Record] = {}
    for r in data.records:
        if r["type"] == "nemesis" and r.get("f") == "start":
            starts[r["id"]] = r
        elif r["type"] == "nemesis" and r.get("f") == "stop":
            stops[r["id"]] = r
    return [(start, stops.get(key)) for key, start in starts.items()]


def _commit_times(data: RunData) -> list[tuple[float, int]]:
    """(t, new highest height) each time the highest height any node reported grew."""
    top = -1
    out = []
    for r in sorted(_observations(data), key=lambda r: r["t"]):
        if r["height"] > top:
            top = r["height"]
            out.append((r["t"], top))
    return out


# ---------------------------------------------------------------------------------------
# the checks


def check_acked_once(data: RunData, params: Params) -> Verdict:
    """Every acknowledged (ok) transfer is in the agreed chain exactly once, at the
    height it was acknowledged at."""
    verdict = Verdict()
    heights = _tx_heights(data)
    for op in _ops(data, "ok", "transfer"):
        verdict.checked += 1
        value = op["value"]
        found = heights.get(value["hash"], [])
        if not found:
            verdict.anomalies.append({"kind": "lost", "hash": value["hash"], "acked": value})
        elif len(found) > 1:
            verdict.anomalies.append(
                {"kind": "applied_twice", "hash": value["hash"], "heights": found}
            )
        elif value.get("height") is not None and found[0] != value["height"]:
            verdict.anomalies.append(
                {"kind": "wrong_height", "hash": value["hash"], "acked": value, "chain": found}
            )
    return verdict


def check_failed_absent(data: RunData, params: Params) -> Verdict:
    """A transfer that definitely failed (refused, or reported rejected) is not in the chain."""
    verdict = Verdict(may_be_empty=True)
    heights = _tx_heights(data)
    for op in _ops(data, "fail", "transfer"):
        verdict.checked += 1
        found = heights.get(op["value"]["hash"])
        if found:
            verdict.anomalies.append({"kind": "failed_but_committed", "op": op, "heights": found})
    return verdict


def check_no_duplicates(data: RunData, params: Params) -> Verdict:
    """No tx (acknowledged or not) is in the agreed chain twice."""
    verdict = Verdict()
    for tx_hash, found in _tx_heights(data).items():
        verdict.checked += 1
        if len(found) > 1:
            verdict.anomalies.append({"kind": "applied_twice", "hash": tx_hash, "heights": found})
    return verdict


def check_no_phantoms(data: RunData, params: Params) -> Verdict:
    """Every tx of the chain after the baseline read is one a client invoked."""
    verdict = Verdict(may_be_empty=True)
    baseline = _setup(data)["baseline"]["height"]
    invoked = {r["value"]["hash"] for r in _ops(data, "invoke", "transfer")}
    for height, block in sorted(data.blocks.items()):
        if height <= baseline:
            continue
        for tx_hash in block.get("txs", []):
            verdict.checked += 1
            if tx_hash not in invoked:
                verdict.anomalies.append({"kind": "phantom", "hash": tx_hash, "height": height})
    return verdict


def check_read_totals(data: RunData, params: Params) -> Verdict:
    """Every read at one height sums to the fixed total, and no balance is negative."""
    verdict = Verdict()
    setup = _setup(data)
    total = setup["total"]
    for op in _ops(data, "ok", "read"):
        verdict.checked += 1
        balances = op["value"]["balances"]
        got = sum(balances.values())
        negative = {a: b for a, b in balances.items() if b < 0}
        if got != total or negative:
            verdict.anomalies.append(
                {
                    "kind": "wrong_total" if got != total else "negative_balance",
                    "node": op.get("node"),
                    "height": op["value"]["height"],
                    "total": got,
                    "expected": total,
                    "negative": negative,
                }
            )
    return verdict


def replay(data: RunData, upto: int) -> dict[str, int] | None:
    """The workload accounts' balances at height `upto`, from the baseline read and the
    agreed chain's committed transfers (None below the baseline)."""
    setup = _setup(data)
    baseline = setup["baseline"]
    if upto < baseline["height"]:
        return None
    balances = dict(baseline["balances"])
    transfers = {r["value"]["hash"]: r["value"] for r in _ops(data, "invoke", "transfer")}
    for height in range(baseline["height"] + 1, upto + 1):
        for tx_hash in data.blocks.get(height, {}).get("txs", []):
            value = transfers.get(tx_hash)
            if value is not None:
                balances[value["from"]] -= value["amount"]
                balances[value["to"]] += value["amount"]
    return balances


class _Replayer:
    """Balances at increasing heights without replaying from the baseline each time."""

    def __init__(self, data: RunData) -> None:
        setup = _setup(data)
        self.data = data
        self.height = setup["baseline"]["height"]
        self.balances = dict(setup["baseline"]["balances"])
        self.transfers = {r["value"]["hash"]: r["value"] for r in _ops(data, "invoke", "transfer")}
        self.cache: dict[int, dict[str, int]] = {self.height: dict(self.balances)}

    def at(self, height: int) -> dict[str, int] | None:
        if height in self.cache:
            return self.cache[height]
        if height < self.height:
            return replay(self.data, height)
        while self.height < height:
            self.height += 1
            for tx_hash in self.data.blocks.get(self.height, {}).get("txs", []):
                value = self.transfers.get(tx_hash)
                if value is not None:
                    self.balances[value["from"]] -= value["amount"]
                    self.balances[value["to"]] += value["amount"]
        self.cache[height] = dict(self.balances)
        return self.cache[height]


def check_reads_match_chain(data: RunData, params: Params) -> Verdict:
    """Every read at height H shows exactly the balances the agreed chain gives at H."""
    verdict = Verdict()
    baseline = _setup(data)["baseline"]["height"]
    tip = max(data.blocks, default=0)
    replayer = _Replayer(data)
    for op in sorted(_ops(data, "ok", "read"), key=lambda r: r["value"]["height"]):
        height = op["value"]["height"]
        verdict.checked += 1
        if height > tip:
            verdict.anomalies.append(
                {"kind": "read_beyond_chain", "node": op.get("node"), "height": height, "tip": tip}
            )
            continue
        if height < baseline:
            continue
        expected = replayer.at(height)
        if expected != op["value"]["balances"]:
            diff = {
                a: {"read": b, "chain": (expected or {}).get(a)}
                for a, b in op["value"]["balances"].items()
                if (expected or {}).get(a) != b
            }
            verdict.anomalies.append(
                {"kind": "read_differs", "node": op.get("node"), "height": height, "diff": diff}
            )
    return verdict


def check_no_forks(data: RunData, params: Params) -> Verdict:
    """No two nodes ever report different blocks at one height: the chains read at the
    end, and every status the observer saw during the run."""
    verdict = Verdict()
    seen: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for node, chain in data.chains.items():
        for height, block_hash in chain.items():
            seen[int(height)][block_hash].add(f"{node} (chain)")
    for r in _observations(data):
        if r.get("block_hash"):
            seen[r["height"]][r["block_hash"]].add(f"{r['node']} (status)")
    for height, hashes in sorted(seen.items()):
        verdict.checked += 1
        if len(hashes) > 1:
            verdict.anomalies.append(
                {
                    "kind": "fork",
                    "height": height,
                    "blocks": {h: sorted(who) for h, who in hashes.items()},
                }
            )
    return verdict


def check_converged(data: RunData, params: Params) -> Verdict:
    """After the last heal every node reached the same height, block and state hash, and
    its chain is the agreed one."""
    verdict = Verdict()
    final = data.final
    statuses: Mapping[str, Any] = final.get("statuses", {})
    verdict.checked = len(statuses)
    verdict.notes["converge_s"] = final.get("converge_s")
    keys = {
        name: (s.get("height"), s.get("block_hash"), s.get("state_hash")) if s else None
        for name, s in statuses.items()
    }
    if not final.get("converged") or len(set(keys.values())) != 1 or None in keys.values():
        verdict.anomalies.append({"kind": "not_converged", "statuses": keys})
    # the chains are read after that (the heartbeat keeps committing meanwhile): each
    # must hold at least the height all nodes agreed on
    agreed = max((k[0] for k in keys.values() if k and isinstance(k[0], int)), default=0)
    for node, chain in data.chains.items():
        top = max((int(h) for h in chain), default=0)
        if top < agreed:
            verdict.anomalies.append(
                {"kind": "behind", "node": node, "height": top, "converged_at": agreed}
            )
    return verdict


def check_liveness_after_heal(data: RunData, params: Params) -> Verdict:
    """After every heal, a block commits within the bound (the first time the highest
    height any node reports grows, after the heal)."""
    verdict = Verdict()
    commits = _commit_times(data)
    delays: list[float | None] = []
    recoveries: list[dict[str, Any]] = []
    for start, stop in _faults(data):
        if stop is None:
            verdict.anomalies.append({"kind": "never_healed", "fault": start})
            continue
        verdict.checked += 1
        healed = stop["t"]
        after = next((t for t, _ in commits if t >= healed), None)
        delay = None if after is None else round(after - healed, 3)
        delays.append(delay)
        recoveries.append(
            {"id": start["id"], "fault": start.get("fault"), "variant": start.get("variant"),
             "keeps_quorum": start.get("keeps_quorum"), "s": delay}
        )  # fmt: skip
        if delay is None or delay > params.liveness_bound_s:
            verdict.anomalies.append(
                {
                    "kind": "slow_recovery",
                    "fault": start.get("fault"),
                    "variant": start.get("variant"),
                    "id": start["id"],
                    "healed_at": healed,
                    "first_commit_after_s": delay,
                    "bound_s": params.liveness_bound_s,
                }
            )
    measured = [d for d in delays if d is not None]
    verdict.notes["bound_s"] = params.liveness_bound_s
    verdict.notes["max_s"] = max(measured, default=None)
    verdict.notes["delays_s"] = delays
    broken = [r["s"] for r in recoveries if not r["keeps_quorum"] and r["s"] is not None]
    verdict.notes["max_after_lost_quorum_s"] = max(broken, default=None)
    verdict.notes["recoveries"] = recoveries
    return verdict


def check_progress_during_faults(data: RunData, params: Params) -> Verdict:
    """While a fault leaves 2f+1 validators up, connected and with agreeing clocks, the
    chain keeps committing (a commit within every such window of at least the window
    bound)."""
    verdict = Verdict(may_be_empty=True)
    commits = _commit_times(data)
    for start, stop in _faults(data):
        if stop is None or not start.get("keeps_quorum"):
            continue
        if stop["t"] - start["t"] < params.progress_window_s:
            continue
        verdict.checked += 1
        if not any(start["t"] < t <= stop["t"] for t, _ in commits):
            verdict.anomalies.append(
                {
                    "kind": "stalled",
                    "fault": start.get("fault"),
                    "variant": start.get("variant"),
                    "nodes": start.get("nodes"),
                    "window_s": round(stop["t"] - start["t"], 3),
                }
            )
    return verdict


def check_block_times(data: RunData, params: Params) -> Verdict:
    """Block times never go back, and no block is dated further ahead of the moment it was
    first seen committed than the allowed clock skew: a skewed validator cannot make the
    others accept a bad time."""
    verdict = Verdict()
    first_seen: dict[int, int] = {}
    observations = sorted(_observations(data), key=lambda r: r["t"])
    top = -1
    for r in observations:
        for height in range(max(top + 1, 1), r["height"] + 1):
            first_seen[height] = r["wall_ms"]
        top = max(top, r["height"])
    previous = None
    for height, block in sorted(data.blocks.items()):
        verdict.checked += 1
        time_ms = block["time"]
        if previous is not None and time_ms < previous:
            verdict.anomalies.append(
                {"kind": "time_went_back", "height": height, "time": time_ms, "previous": previous}
            )
        previous = time_ms
        seen = first_seen.get(height)
        if seen is not None and time_ms > seen + params.max_clock_skew_ms + _TIME_SLACK_MS:
            verdict.anomalies.append(
                {
                    "kind": "time_in_future",
                    "height": height,
                    "proposer": block.get("proposer"),
                    "ahead_ms": time_ms - seen,
                    "allowed_ms": params.max_clock_skew_ms,
                }
            )
    return verdict


def check_disk_full(data: RunData, params: Params) -> Verdict:
    """A node whose disk filled stopped loudly: it exited non-zero with one line of
    `error: ...` (no traceback), and after space returned it restarted and served."""
    verdict = Verdict(may_be_empty=True)
    for start, stop in _faults(data):
        if start.get("fault") != "disk" or stop is None:
            continue
        verdict.checked += 1
        value = stop.get("value", {})
        lines = [line for line in value.get("output", "").splitlines() if line.strip()]
        problems = []
        if value.get("exit_code") in (None, 0):
            problems.append(f"exit code {value.get('exit_code')} (signal {value.get('signal')})")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"output is not one error line: {lines[-5:]}")
        if not value.get("restarted"):
            problems.append("did not serve again after a restart")
        if problems:
            verdict.anomalies.append(
                {"kind": "not_loud", "nodes": start.get("nodes"), "problems": problems}
            )
    return verdict


def check_workload(data: RunData, params: Params) -> Verdict:
    """The run did something: transfers were acknowledged, reads succeeded, clients did
    not crash (a client error is a bug in the workload, reported rather than hidden)."""
    verdict = Verdict()
    acked = len(_ops(data, "ok", "transfer"))
    reads = len(_ops(data, "ok", "read"))
    verdict.checked = acked + reads
    if acked == 0:
        verdict.anomalies.append({"kind": "no_acknowledged_transfer"})
    if reads == 0:
        verdict.anomalies.append({"kind": "no_successful_read"})
    for r in data.records:
        if r["type"] == "client_error":
            verdict.anomalies.append({"kind": "client_error", "record": r})
    return verdict


def check_nemesis(data: RunData, params: Params) -> Verdict:
    """The nemesis itself ran every fault it started to its heal without failing."""
    verdict = Verdict()
    verdict.checked = len(_faults(data))
    for r in data.records:
        if r["type"] == "nemesis_error":
            verdict.anomalies.append({"kind": "nemesis_error", "t": r["t"], "error": r["error"]})
    return verdict


CHECKS: Final[dict[str, Callable[[RunData, Params], Verdict]]] = {
    "workload": check_workload,
    "nemesis_ran_cleanly": check_nemesis,
    "acked_txs_committed_once": check_acked_once,
    "failed_txs_not_committed": check_failed_absent,
    "no_tx_applied_twice": check_no_duplicates,
    "no_phantom_txs": check_no_phantoms,
    "reads_sum_to_total": check_read_totals,
    "reads_match_chain": check_reads_match_chain,
    "no_forks": check_no_forks,
    "converged": check_converged,
    "liveness_after_heal": check_liveness_after_heal,
    "progress_during_faults": check_progress_during_faults,
    "block_times": check_block_times,
    "disk_full_stops_loudly": check_disk_full,
}


def check(data: RunData, params: Params | None = None) -> dict[str, Any]:
    """Every check's verdict, `valid` (all hold) and a summary of the run."""
    params = params or Params()
    verdicts = {name: fn(data, params).to_json() for name, fn in CHECKS.items()}
    return {
        "valid": all(v["valid"] for v in verdicts.values()),
        "checks": verdicts,
        "summary": summarize(data),
    }


def summarize(data: RunData) -> dict[str, Any]:
    ops = Counter(
        f"{r['f']}_{r['type']}" for r in data.records if r["type"] in ("ok", "fail", "info")
    )
    faults = Counter(start.get("fault") for start, _ in _faults(data))
    variants = Counter(f"{s.get('fault')}:{s.get('variant')}" for s, _ in _faults(data))
    return {
        "transfers_acknowledged": ops.get("transfer_ok", 0),
        "transfers_failed": ops.get("transfer_fail", 0),
        "transfers_unknown": ops.get("transfer_info", 0),
        "reads_ok": ops.get("read_ok", 0),
        "reads_failed": ops.get("read_fail", 0),
        "faults": dict(faults),
        "fault_variants": dict(variants),
        "faults_total": sum(faults.values()),
        "height": max(data.blocks, default=0),
        "txs_in_chain": sum(len(b.get("txs", [])) for b in data.blocks.values()),
    }


def failed_checks(result: Mapping[str, Any]) -> Sequence[str]:
    return [name for name, v in result["checks"].items() if not v["valid"]]
