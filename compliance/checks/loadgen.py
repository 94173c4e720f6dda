"""G3xx: LoadGen's own logs (rules.md section 4), read from mlperf_log_detail.txt keys."""
from __future__ import annotations

import math

from compliance.checks import err
from compliance.checks.timing import duration_ms, issued
from compliance.context import Ctx

RESULT_KEY = {"Offline": "result_samples_per_second",
              "Server": "result_scheduled_samples_per_sec",
              "SingleStream": "result_90.00_percentile_latency_ns"}
SCENARIO_NAME = {"Offline": "Offline", "Server": "Server", "SingleStream": "SingleStream"}


def _logs(ctx: Ctx, r):
    """(test mode, path, parsed log, problem) for every run of a result, audits included."""
    for base, mode in r.runs:
        rel = f"{base}/mlperf_log_detail.txt"
        d, problem = ctx.tree.mllog(rel)
        yield mode, rel, d, problem


def _val(d, key):
    v = d.get(key)
    return (None, "") if v is None else (v[0], f"line {v[1]}")


def result_valid(ctx: Ctx, rule: str):
    """the performance run's result is VALID."""
    for r in ctx.results:
        rel = f"{r.perf}/mlperf_log_detail.txt"
        d, problem = ctx.tree.mllog(rel)
        if d is None:
            if ctx.tree.kind(rel) != "missing":
                yield err(rule, rel, f"detail log unreadable: {problem}")
            continue
        v, loc = _val(d, "result_validity")
        if v != "VALID":
            reason, _ = _val(d, "result_invalid_reason")
            yield err(rule, rel, "LoadGen did not report the run VALID", location=loc,
                      expected="VALID", found=v, hint=reason or "see mlperf_log_summary.txt")


def no_errors(ctx: Ctx, rule: str):
    """the detail logs carry no LoadGen error and are well formed: every non-empty line
    is a `:::MLLOG {json}` record (strict JSON: no NaN/Infinity, no huge integers, no duplicate
    fields) with LoadGen's metadata; no key but the repeatable messages is logged twice; the
    time stamps never go back; num_errors is 0 (and logged, in performance runs); no record is
    flagged is_error."""
    for r in ctx.results:
        for mode, rel, d, problem in _logs(ctx, r):
            if d is None:
                if ctx.tree.kind(rel) != "missing":
                    yield err(rule, rel, f"detail log unreadable: {problem}")
                continue
            for msg, line in d["__errors__"]:
                yield err(rule, rel, "LoadGen logged an error", location=f"line {line}", found=msg)
            if d["__bad_lines__"]:
                yield err(rule, rel, "malformed :::MLLOG lines (a truncated or edited log)",
                          location=f"line {d['__bad_lines__'][0]}",
                          found=f"{d['__counts__']['__bad_lines__']} bad lines")
            if d["__dups__"]:
                k, line = d["__dups__"][0]
                yield err(rule, rel, f"the key {k!r} is logged twice (an edited log)",
                          location=f"line {line}",
                          found=f"{d['__counts__']['__dups__']} repeated keys")
            if d["__time_problems__"]:
                yield err(rule, rel, "time stamps missing or going back (an edited log)",
                          location=f"line {d['__time_problems__'][0]}",
                          found=f"{d['__counts__']['__time_problems__']} lines")
            for key in ("effective_scenario", "effective_test_mode", "loadgen_version") + \
                    (("num_errors",) if mode == "PerformanceOnly" else ()):
                if key not in d:
                    yield err(rule, rel, f"the log has no {key} (a truncated or forged log)",
                              expected=key, found="absent")
            ne = d.get("num_errors", (0, 0))
            if ne[0] != 0 or isinstance(ne[0], bool):
                yield err(rule, rel, "LoadGen counted errors", location=f"line {ne[1]}",
                          expected=0, found=ne[0])


def official_seeds(ctx: Ctx, rule: str):
    """both runs used the official LoadGen seeds."""
    for r in ctx.results:
        for _, rel, d, _ in _logs(ctx, r):
            if d is None:
                continue
            for name, seed in ctx.rules.official_seeds.items():
                v, loc = _val(d, f"effective_{name}")
                if v != seed:
                    yield err(rule, rel, f"{name} is not the official seed", location=loc,
                              expected=seed, found=v)


def duration_and_counts(ctx: Ctx, rule: str):
    """the performance run met the profile's min duration and query count: its settings
    ask for them, LoadGen's flags say so, and the log's own evidence shows it (the samples it
    issued, and its duration by its own time stamps)."""
    for r in ctx.results:
        rel = f"{r.perf}/mlperf_log_detail.txt"
        d, _ = ctx.tree.mllog(rel)
        if d is None:
            continue
        prof = ctx.rules.profile(ctx.profile_of(r))
        # Offline is one query of many samples: its count is effective_min_sample_count
        count_key = ("effective_min_sample_count" if r.scenario == "Offline"
                     else "effective_min_query_count")
        need = {"effective_min_duration_ms": prof.min_duration_ms,
                count_key: prof.min_query_count.get(r.scenario, 0)}
        for key, minimum in need.items():
            v, loc = _val(d, key)
            if not isinstance(v, (int, float)) or v < minimum:
                yield err(rule, rel, f"{key} is below the {prof.name} profile", location=loc,
                          expected=f">= {minimum}", found=v)
        for key in ("result_min_duration_met", "result_min_queries_met"):
            v, loc = _val(d, key)
            if v is not True:
                yield err(rule, rel, f"{key} is not true", location=loc, expected=True, found=v)
        n, dur = issued(d), duration_ms(d)
        need_n = prof.min_query_count.get(r.scenario, 0)
        if n is None or n < need_n:
            yield err(rule, rel, "fewer samples were issued than the profile requires",
                      expected=f">= {need_n}", found=n)
        if dur is None or dur < prof.min_duration_ms:
            yield err(rule, rel, "the run is shorter than the min duration by its own time "
                      "stamps", expected=f">= {prof.min_duration_ms} ms", found=f"{dur} ms")


def server_latency_bound(ctx: Ctx, rule: str):
    """Server runs used the rules' latency bound and percentile, and met them."""
    for r in ctx.results:
        if r.scenario != "Server":
            continue
        rel = f"{r.perf}/mlperf_log_detail.txt"
        d, _ = ctx.tree.mllog(rel)
        if d is None:
            continue
        bench = ctx.rules.benchmark(r.benchmark)
        bound = bench.target_latency_ns("Server")
        pct = bench.scenarios["Server"]["latency_percentile"] / 100
        v, loc = _val(d, "effective_target_latency_ns")
        if not isinstance(v, (int, float)) or v > bound:
            yield err(rule, rel, "the Server latency bound is looser than the rules'",
                      location=loc, expected=f"<= {bound}", found=v)
        v, loc = _val(d, "effective_target_latency_percentile")
        if not isinstance(v, (int, float)) or (v < pct and not math.isclose(v, pct)):
            yield err(rule, rel, "the Server latency percentile is not the rules'",
                      location=loc, expected=pct, found=v)
        v, loc = _val(d, "result_perf_constraints_met")
        if v is not True:
            yield err(rule, rel, "the latency constraint was not met", location=loc,
                      expected=True, found=v)


def run_identity(ctx: Ctx, rule: str):
    """each log is the run its directory says (scenario and mode)."""
    for r in ctx.results:
        for mode, rel, d, _ in _logs(ctx, r):
            if d is None:
                continue
            v, loc = _val(d, "effective_scenario")
            if v is not None and v != SCENARIO_NAME[r.scenario]:
                yield err(rule, rel, "the log is of another scenario", location=loc,
                          expected=r.scenario, found=v)
            v, loc = _val(d, "effective_test_mode")
            if v is not None and v != mode:
                yield err(rule, rel, "the log is of another test mode", location=loc,
                          expected=mode, found=v)


def measurements_agree(ctx: Ctx, rule: str):
    """measurements.json states what the detail log says (no forged throughput).

    Why: the leaderboard ranks LoadGen's own figure; a measurements.json that claims more
    than the log is a forged result, whatever the reason.

    Fix: never edit measurements.json; regenerate it with `make submission` (it copies
    LoadGen's figures)."""
    for r in ctx.results:
        rel = r.file("measurements.json")
        m = ctx.measurements(r)
        d, _ = ctx.tree.mllog(f"{r.perf}/mlperf_log_detail.txt")
        if d is None or m is None:
            if ctx.tree.is_file(rel) and m is None:
                yield err(rule, rel, "measurements.json is not a JSON object")
            continue
        perf = m.get("performance") if isinstance(m.get("performance"), dict) else {}
        logged, _ = _val(d, RESULT_KEY[r.scenario])
        if r.scenario == "SingleStream" and isinstance(logged, (int, float)):
            logged = logged / 1e6
        claimed = perf.get("value")
        if not isinstance(claimed, (int, float)) or isinstance(claimed, bool) or \
                not isinstance(logged, (int, float)) or \
                not math.isclose(claimed, logged, rel_tol=1e-6, abs_tol=1e-9):
            yield err(rule, rel, "the stated result differs from LoadGen's log",
                      location="/performance/value", expected=logged, found=claimed,
                      hint="results are read from mlperf_log_detail.txt, never typed in")
        validity, _ = _val(d, "result_validity")
        if perf.get("validity") != validity:
            yield err(rule, rel, "the stated validity differs from LoadGen's log",
                      location="/performance/validity", expected=validity,
                      found=perf.get("validity"))
        for key, want in (("benchmark", r.benchmark), ("scenario", r.scenario),
                          ("system", r.system)):
            if m.get(key) != want:
                yield err(rule, rel, f"measurements.json names another {key}",
                          location=f"/{key}", expected=want, found=m.get(key))


def profile_eligible(ctx: Ctx, rule: str):
    """results are of the expected profile; smoke results are never eligible.

    Why: a smoke run is minutes long with small query counts, so its figures say nothing
    about sustained throughput; only official runs may be ranked.

    Fix: check a smoke submission as one (`make check PROFILE=smoke`, or `python -m
    compliance check DIR --profile smoke`); for the board, run `make submission` with the
    official profile."""
    for r in ctx.results:
        rel = r.file("measurements.json")
        m = ctx.measurements(r)
        if m is None:
            continue
        prof = m.get("profile")
        if not isinstance(prof, str) or prof not in ctx.rules.profiles:
            yield err(rule, rel, "unknown profile", location="/profile",
                      expected=", ".join(ctx.rules.profiles), found=prof)
            continue
        if prof != ctx.expect_profile:
            hint = ("smoke results are never eligible; check them with `make check "
                    "PROFILE=smoke` (or --profile smoke)" if prof == "smoke" else
                    f"check it with `make check PROFILE={prof}` (or --profile {prof})")
            yield err(rule, rel, f"the result is of the {prof} profile where the "
                      f"{ctx.expect_profile} profile was expected",
                      location="/profile", expected=ctx.expect_profile, found=prof, hint=hint)
        if m.get("eligible") is not ctx.rules.profile(prof).eligible:
            yield err(rule, rel, "the eligibility flag contradicts the profile",
                      location="/eligible", expected=ctx.rules.profile(prof).eligible,
                      found=m.get("eligible"))
