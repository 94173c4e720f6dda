"""G310-G311: recompute, don't read. LoadGen's result keys are figures; the log's own time
stamps, its issued-sample counts and the trace's per-episode latencies are the evidence, and
the figures must agree with them (rules.md section 9).

- A rate is samples issued over the time they took: the detail log stamps every line with
  `time_ms` since the test started, and says how many queries it generated.
- An episode's latency in the trace (time inside the SUT) is a lower bound of LoadGen's latency
  for that sample (which adds queueing), so the trace's percentiles bound the logged ones.
"""
from __future__ import annotations

import math

from compliance.checks import err
from compliance.checks.traces import trace_records
from compliance.context import Ctx

SLACK_MS = 5.0   # the trace rounds to 1 us; LoadGen's clock starts a little earlier


def _get(d: dict, key: str):
    v = d.get(key, (None,))[0]
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def issued(d: dict) -> int | None:
    """Samples LoadGen issued in a performance run (queries x samples per query)."""
    q, spq = (d.get("generated_query_count", (None,))[0],
              d.get("generated_samples_per_query", (None,))[0])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (q, spq)):
        return None
    return q * spq


def duration_ms(d: dict) -> float | None:
    """The run's length by its own stamps: the time of the last record (results come last)."""
    return d["__times__"][-1] if d.get("__times__") else None


def _perf_runs(ctx: Ctx):
    for r in ctx.results:
        for base, mode in r.runs:
            if mode != "PerformanceOnly":
                continue
            rel = f"{base}/mlperf_log_detail.txt"
            d, _ = ctx.tree.mllog(rel)
            if d is not None:
                yield r, base, rel, d


def _off(logged: float, recomputed: float, tol: float) -> bool:
    return not math.isclose(logged, recomputed, rel_tol=tol)


def throughput_recomputed(ctx: Ctx, rule: str):
    """every performance and audit run's rate is what its own log shows: Offline
    samples per second = samples issued / the run's duration by the log's time stamps; Server
    scheduled samples per second = samples issued / generated_query_duration, completed samples
    per second = samples issued / the run's duration. Tolerance: rules.yaml
    checker.rate_tolerance_fraction (or 3/n for a short run of n samples)."""
    tol = ctx.rules.checker["rate_tolerance_fraction"]
    for r, base, rel, d in _perf_runs(ctx):
        n, dur = issued(d), duration_ms(d)
        if n is None or not dur:
            yield err(rule, rel, "the log does not show how many samples were issued in how "
                      "long", expected="generated_query_count, generated_samples_per_query, "
                      "time stamps", hint="a truncated or edited log")
            continue
        t = max(tol, 3 / n)
        checks = []
        if r.scenario == "Offline":
            checks.append(("result_samples_per_second", n / (dur / 1000)))
        elif r.scenario == "Server":
            gen = _get(d, "generated_query_duration")
            if gen and gen > 0:
                checks.append(("result_scheduled_samples_per_sec", n / (gen / 1e9)))
            else:
                checks.append(("result_scheduled_samples_per_sec", None))
            checks.append(("result_completed_samples_per_sec", n / (dur / 1000)))
        for key, want in checks:
            got = _get(d, key)
            if got is None or want is None or got <= 0 or _off(got, want, t):
                yield err(rule, rel, f"{key} is not what the log's own counts and time "
                          "stamps give", location=f"line {d.get(key, (0, '?'))[1]}",
                          expected=f"{want:.6g} (+/- {t:.0%})" if want else "a rate",
                          found=got, hint="LoadGen's figures are recomputed, never trusted")


def _pct(values: list[float], q: float) -> float:
    """LoadGen's percentile: the value at index floor(q * n) of the sorted latencies."""
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def latency_recomputed(ctx: Ctx, rule: str):
    """latencies and the Server schedule are recomputed, never read from a flag.
    Server: the logged p99 is within the rules' bound and the trace's own p99 (episode
    latencies are a lower bound of LoadGen's) is not above the logged p99; the latency flag
    agrees; the scheduled rate is the target rate (within checker.server_rate_tolerance_fraction
    or 4/sqrt(n)); one sample per query. SingleStream: the trace's p90 is not above the logged
    p90. Offline: one query; no episode is longer than the run. Every run: no episode is longer
    than LoadGen's logged maximum latency."""
    for r, base, rel, d in _perf_runs(ctx):
        recs = trace_records(ctx, f"{base}/agent_trace.jsonl")
        lat = [rec["latency_ms"] for _, rec in recs]
        audit = "/audit/" in base
        bench = ctx.rules.benchmark(r.benchmark)
        mx = _get(d, "result_max_latency_ns")
        if lat and mx is not None and max(lat) > mx / 1e6 * 1.01 + SLACK_MS:
            yield err(rule, rel, "an episode of the trace took longer than LoadGen's maximum "
                      "latency", expected=f"<= {mx / 1e6:.1f} ms", found=f"{max(lat):.1f} ms",
                      hint="the trace and the log are of different runs")
        n = issued(d)
        spq = d.get("generated_samples_per_query", (None,))[0]
        if r.scenario == "Offline":
            q = d.get("generated_query_count", (None,))[0]
            if q != 1:
                yield err(rule, rel, "an Offline run issues one query", expected=1, found=q)
            continue
        if spq != 1:
            yield err(rule, rel, f"a {r.scenario} run issues one sample per query",
                      expected=1, found=spq)
        key, pct = (("result_99.00_percentile_latency_ns", 0.99) if r.scenario == "Server"
                    else ("result_90.00_percentile_latency_ns", 0.90))
        logged = _get(d, key)
        if logged is None:
            yield err(rule, rel, f"the log has no {key}", expected=key, found="absent")
            continue
        if lat and _pct(lat, pct) > logged / 1e6 * 1.01 + SLACK_MS:
            yield err(rule, rel, f"the trace's own p{pct * 100:.0f} latency is above the "
                      "logged one", expected=f"<= {logged / 1e6:.1f} ms",
                      found=f"{_pct(lat, pct):.1f} ms (trace)",
                      hint="episode latencies are a lower bound of LoadGen's")
        if r.scenario != "Server":
            continue
        bound = bench.target_latency_ns("Server")
        met = d.get("result_perf_constraints_met", (None,))[0]
        if not audit and logged > bound:
            yield err(rule, rel, "the Server p99 latency is above the bound",
                      expected=f"<= {bound / 1e6:.0f} ms", found=f"{logged / 1e6:.1f} ms")
        if met is not (logged <= bound):
            yield err(rule, rel, "the latency flag contradicts the logged p99",
                      expected=logged <= bound, found=met)
        target = _get(d, "effective_target_qps")
        sched = _get(d, "result_scheduled_samples_per_sec")
        if n and target and sched is not None:
            tol = max(ctx.rules.checker["server_rate_tolerance_fraction"], 4 / math.sqrt(n))
            if _off(sched, target, tol):
                yield err(rule, rel, "the scheduled rate is not the target rate",
                          expected=f"{target} (+/- {tol:.0%})", found=sched,
                          hint="LoadGen schedules Poisson arrivals at the target rate")
