"""T613: a submission is not a copy of the committed reference submission's runs (rules.md
section 9). In the closed division every honest episode has the reference's content (greedy
decoding of one checkpoint), so a copy is told by what no two runs share: the same samples
completing in the same order with the same latencies. A print is (run, completion number,
sample, latency to 1 ms): a microsecond of jitter leaves it unchanged; two honest runs share
few (their latencies differ by far more than a millisecond).

The leaderboard compares the same prints between entries (B702).
"""
from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache

from compliance.checks import err
from compliance.checks.traces import trace_records
from compliance.context import Ctx

PRINTS_PER_RUN = 100     # episodes seq < this of each performance run
COPY_SHARE = 0.5         # of a run's prints found in the reference's same run: a copy


def episode_print(run: str, rec: dict) -> str:
    """The print of one episode of a run ('nano-react/Offline'), jitter below 0.5 ms kept."""
    key = f"{run}|{rec['seq']}|{rec['qsl_idx']}|{round(rec['latency_ms'])}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def run_prints(records, run: str) -> list[str]:
    return [episode_print(run, rec) for rec in records if rec["seq"] < PRINTS_PER_RUN]


@lru_cache(maxsize=1)
def reference_prints() -> dict[str, frozenset]:
    """{'benchmark/scenario': prints} of the committed reference's performance runs, read by
    streaming only the first lines of each (gzip) trace."""
    from reference.rules import ROOT
    out: dict[str, frozenset] = {}
    base = ROOT / "results/closed/reference/results"
    if not base.is_dir():
        return out
    for trace in sorted(base.glob("*/*/*/performance/run_1/agent_trace.jsonl*")):
        scen, bench = trace.parts[-4], trace.parts[-5]
        opener = gzip.open if trace.name.endswith(".gz") else open
        recs = []
        try:
            with opener(trace, "rt", encoding="utf-8") as f:
                for i, line in enumerate(f):
                    if i >= 4 * PRINTS_PER_RUN:
                        break
                    rec = json.loads(line)
                    if isinstance(rec, dict) and {"seq", "qsl_idx", "latency_ms"} <= rec.keys():
                        recs.append(rec)
        except (OSError, ValueError, EOFError):
            continue
        out[f"{bench}/{scen}"] = frozenset(run_prints(recs, f"{bench}/{scen}"))
    return out


def not_the_reference(ctx: Ctx, rule: str):
    """no performance run is the committed reference submission's (results/closed/reference):
    at least half of its first 100 episodes with the reference's sample, completion number and
    latency (to the millisecond) is a copy, with or without jitter. The reference itself
    (every result naming the submitter 'reference', in that directory) is exempt."""
    from reference.rules import ROOT
    if ctx.tree.root == (ROOT / "results/closed/reference").resolve():
        return
    ref = reference_prints()
    for r in ctx.results:
        key = f"{r.benchmark}/{r.scenario}"
        if key not in ref or not ref[key]:
            continue
        mine = run_prints([rec for _, rec in trace_records(ctx, f"{r.perf}/agent_trace.jsonl")],
                          key)
        shared = sum(1 for p in mine if p in ref[key])
        if mine and shared >= COPY_SHARE * min(len(mine), len(ref[key])):
            yield err(rule, f"{r.perf}/agent_trace.jsonl", "the run is the committed reference "
                      "submission's run (same samples, order and latencies)",
                      expected="a run of this submission's own",
                      found=f"{shared} of {len(mine)} episodes",
                      hint="a submission is measured on its own machine")
