"""A5xx: the audit runs make submission writes beside each result (rules.md section 4.1)."""
from __future__ import annotations

import statistics

import math

from compliance.checks import err
from compliance.evidence import HEX, parse_accuracy_log
from compliance.checks.timing import duration_ms, issued
from compliance.checks.traces import trace_records
from compliance.context import Ctx


def _audit(r, name: str) -> str:
    return f"{r.rel}/audit/{name}"


def _well_formed(e) -> bool:
    """An accuracy-log entry with an integer sample index and hex data."""
    return (isinstance(e, dict) and isinstance(e.get("qsl_idx"), int)
            and isinstance(e.get("data"), str) and bool(HEX.match(e["data"])))


def test01_outputs_match(ctx: Ctx, rule: str):
    """(TEST01, in full): every answer sampled during a performance-mode run equals the
    accuracy-mode answer of the same sample. MLPerf's TEST01 compares only the first element;
    here the whole answer is compared. The run used the pinned sampling (rules.yaml
    audits.TEST01 probability and seed), logged about that fraction of the issued samples
    (within 5 standard deviations), and every logged answer is its trace's answer."""
    t01 = ctx.rules.audits["TEST01"]
    limit = t01["max_mismatch_fraction"]
    for r in ctx.results:
        rel = f"{_audit(r, 'TEST01')}/mlperf_log_accuracy.json"
        data, problem = ctx.tree.json(rel)
        if data is None:
            if ctx.tree.kind(rel) != "missing":
                yield err(rule, rel, f"audit log unreadable: {problem}")
            continue
        drel = f"{_audit(r, 'TEST01')}/mlperf_log_detail.txt"
        d, _ = ctx.tree.mllog(drel)
        if d is not None:
            for key, want in (("effective_accuracy_log_probability",
                               t01["accuracy_log_probability"]),
                              ("effective_accuracy_log_rng_seed", t01["accuracy_log_rng_seed"])):
                got = d.get(key, (None, 0))[0]
                if not isinstance(got, (int, float)) or isinstance(got, bool) or \
                        not math.isclose(got, want):
                    yield err(rule, drel, f"the TEST01 run did not use the pinned {key[10:]}",
                              location=f"line {d.get(key, (0, '?'))[1]}", expected=want, found=got)
            n, p = issued(d), t01["accuracy_log_probability"]
            if n and isinstance(data, list):
                sd = math.sqrt(n * p * (1 - p))
                if abs(len(data) - n * p) > 5 * sd + 2:
                    yield err(rule, rel, "the audit log holds not the sampled share of the "
                              "issued samples", expected=f"about {n * p:.0f} of {n}",
                              found=len(data), hint="the audit log is LoadGen's; do not edit it")
        traced = {}
        for _, rec in trace_records(ctx, f"{_audit(r, 'TEST01')}/agent_trace.jsonl"):
            traced.setdefault(rec["qsl_idx"], set()).add(rec["answer"] or "")
        if traced and isinstance(data, list):
            for i, e in enumerate(data):  # malformed entries are reported below
                if _well_formed(e):
                    ans = bytes.fromhex(e["data"]).decode("utf-8", errors="replace")
                    if ans not in traced.get(e["qsl_idx"], ()):
                        yield err(rule, rel, "a logged answer is not its trace's answer",
                                  location=f"/{i}", found=ans[:200])
                        break
        acc, _ = parse_accuracy_log(ctx, r)
        if acc is None:
            continue
        reference = {}
        for idx, answer, _ in acc:
            reference.setdefault(idx, answer)
        if not isinstance(data, list) or not data:
            yield err(rule, rel, "no performance-mode answers were sampled",
                      expected=">= 1 logged answer",
                      found=0 if isinstance(data, list) else type(data).__name__)
            continue
        compared = mismatched = 0
        first_bad = None
        for i, e in enumerate(data):
            if not _well_formed(e):
                yield err(rule, rel, "malformed audit log entry", location=f"/{i}")
                break
            if e["qsl_idx"] not in reference:
                continue
            compared += 1
            answer = bytes.fromhex(e["data"]).decode("utf-8", errors="replace")
            if answer != reference[e["qsl_idx"]]:
                mismatched += 1
                first_bad = first_bad or (i, reference[e["qsl_idx"]], answer)
        if compared == 0:
            # a smoke accuracy run scores a subset, which the sampled answers may miss
            if len(reference) >= ctx.rules.benchmark(r.benchmark).eval_set_size:
                yield err(rule, rel, "no sampled answer can be compared with accuracy mode",
                          expected=">= 1 common sample", found=0)
        elif mismatched / compared > limit:
            i, want, got = first_bad
            yield err(rule, rel, f"{mismatched} of {compared} performance-mode answers differ "
                      f"from accuracy mode", location=f"/{i}", expected=want, found=got,
                      hint="performance runs must compute the same answers as accuracy runs")


def _tokens_per_s(ctx: Ctx, base: str, scenario: str):
    """Generated tokens per second of a run, recomputed: the trace's tokens over the run's
    duration by the log's own time stamps (never LoadGen's stated rate)."""
    d, _ = ctx.tree.mllog(f"{base}/mlperf_log_detail.txt")
    recs = trace_records(ctx, f"{base}/agent_trace.jsonl")
    if d is None or not recs:
        return None
    dur = duration_ms(d)
    if not dur or dur <= 0:
        return None
    return sum(rec["generated_tokens"] for _, rec in recs) / (dur / 1000)


def _tokens_per_gen_ms(ctx: Ctx, base: str):
    """Generated tokens per ms of generation time, from the trace alone."""
    recs = trace_records(ctx, f"{base}/agent_trace.jsonl")
    ms = sum(s["generation_ms"] for _, rec in recs for s in rec["steps"])
    return sum(rec["generated_tokens"] for _, rec in recs) / ms if recs and ms > 0 else None


def test04_no_caching(ctx: Ctx, rule: str):
    """(TEST04's idea): issuing one sample over and over must not be much faster, in
    generated tokens per second, than the normal performance run; a large speed-up means
    results are cached across samples, which no division allows. Both rates are recomputed
    (trace tokens over the run's duration by its time stamps), and the trace's own decode speed
    (tokens per ms of generation) is held to audits.TEST04.max_trace_speedup."""
    max_speedup = ctx.rules.audits["TEST04"]["max_speedup"]
    max_trace = ctx.rules.audits["TEST04"]["max_trace_speedup"]
    idx = ctx.rules.audits["TEST04"]["sample_index"]  # LoadGen's index into its loaded set
    for r in ctx.results:
        base = _audit(r, "TEST04")
        acc_rel = f"{base}/mlperf_log_accuracy.json"
        data, problem = ctx.tree.json(acc_rel)
        if ctx.tree.kind(acc_rel) != "missing" and not isinstance(data, list):
            yield err(rule, acc_rel, f"audit log unreadable: {problem or 'not a JSON list'}")
        rel = f"{base}/mlperf_log_detail.txt"
        d, _ = ctx.tree.mllog(rel)
        if d is None:
            continue
        same, _ = d.get("effective_performance_issue_same", (None, 0))
        same_idx, _ = d.get("effective_performance_issue_same_index", (None, 0))
        if same is not True or same_idx != idx:
            yield err(rule, rel, "the TEST04 run did not issue the same sample repeatedly",
                      expected=f"performance_issue_same true, index {idx}",
                      found=f"{same}, index {same_idx}")
            continue
        recs = trace_records(ctx, f"{base}/agent_trace.jsonl")
        if not recs:
            continue  # missing or unreadable: L101 / T601 report it
        if len({rec["qsl_idx"] for _, rec in recs}) != 1 or \
                any(rec["generated_tokens"] == 0 for _, rec in recs):
            yield err(rule, f"{base}/agent_trace.jsonl",
                      "TEST04 episodes are not real runs of one repeated sample",
                      expected="one qsl_idx, generated tokens > 0",
                      found=f"{len({rec['qsl_idx'] for _, rec in recs})} samples")
            continue
        audit = _tokens_per_s(ctx, base, r.scenario)
        normal = _tokens_per_s(ctx, r.perf, r.scenario)
        if audit is None or normal is None:
            if normal is None and not trace_records(ctx, f"{r.perf}/agent_trace.jsonl"):
                continue  # the performance run's trace is missing: L101 / T601 report it
            yield err(rule, rel, "cannot compute generated tokens/s for the caching audit",
                      hint="the runs' detail logs must state their rates")
        elif audit > max_speedup * normal:
            yield err(rule, rel, "the repeated sample ran much faster than the normal run",
                      expected=f"<= {max_speedup} x {normal:.1f} tokens/s",
                      found=f"{audit:.1f} tokens/s", hint="results must not be cached")
        a, n = _tokens_per_gen_ms(ctx, base), _tokens_per_gen_ms(ctx, r.perf)
        if a is not None and n is not None and a > max_trace * n:
            yield err(rule, f"{base}/agent_trace.jsonl", "the repeated sample decoded much "
                      "faster than the normal run", expected=f"<= {max_trace} x {n:.3f} tokens/ms",
                      found=f"{a:.3f} tokens/ms", hint="results must not be cached")


def test09_output_length(ctx: Ctx, rule: str):
    """(TEST09's idea): the mean generated tokens per episode of the accuracy run stays
    within the tolerance of the reference's, so no one shortens outputs to look faster."""
    tol = ctx.rules.audits["TEST09"]["tolerance_fraction"]
    for r in ctx.results:
        ref = ctx.rules.benchmark(r.benchmark).reference_mean_generated_tokens
        m = ctx.measurements(r)
        if m is None or m.get("division") != "closed":
            continue
        rel = f"{r.acc}/agent_trace.jsonl"
        recs = trace_records(ctx, rel)
        if not recs:
            continue
        mean = statistics.fmean(rec["generated_tokens"] for _, rec in recs)
        if abs(mean - ref) > tol * ref:
            yield err(rule, rel, "mean generated tokens per episode far from the reference",
                      expected=f"{ref:.1f} +/- {tol:.0%}", found=f"{mean:.1f}")


def audit_runs_valid(ctx: Ctx, rule: str):
    """(section 4.1): every audit run is LoadGen-VALID and long enough: at least the
    profile's audit_min_duration_ms by its own time stamps and audit_min_query_count samples
    issued. A Server (or SingleStream) audit may miss its latency constraint, and only that
    (LoadGen's min duration and min queries flags both true): audits judge answers and
    caching, not the latency tail."""
    for r in ctx.results:
        prof = ctx.rules.profile(ctx.profile_of(r))
        need_n = prof.audit_min_query_count.get(r.scenario, 0)
        for name in ("TEST01", "TEST04"):
            rel = f"{_audit(r, name)}/mlperf_log_detail.txt"
            d, _ = ctx.tree.mllog(rel)
            if d is None:
                continue  # L101 / G302
            v = d.get("result_validity", (None, 0))
            latency_only = r.scenario != "Offline" and all(
                d.get(k, (None,))[0] is True
                for k in ("result_min_duration_met", "result_min_queries_met"))
            if v[0] != "VALID" and not latency_only:
                yield err(rule, rel, "the audit run is not VALID", location=f"line {v[1]}",
                          expected="VALID", found=v[0],
                          hint="make submission re-runs an audit until LoadGen accepts it")
            dur, n = duration_ms(d), issued(d)
            if dur is None or dur < prof.audit_min_duration_ms:
                yield err(rule, rel, "the audit run is shorter than the profile's audit "
                          "duration", expected=f">= {prof.audit_min_duration_ms} ms",
                          found=f"{dur} ms")
            if n is None or n < need_n:
                yield err(rule, rel, "the audit run issued too few samples",
                          expected=f">= {need_n}", found=n)
