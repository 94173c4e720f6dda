"""G313-G315, T610-T612: limits a real run obeys (rules.md section 9, "Limits").

Every file of a submission can be edited so that all of them agree; consistency between them
proves nothing about a timing. These rules hold the figures to what a real run of LoadGen and
of the agent loop can produce, whatever the files say about each other:
- a figure is a finite, non-negative number of a sane size (G313);
- LoadGen's schedule: a Server run completes no faster than it schedules, generates queries
  for at least the min duration and within the run's own stamps; a run issues at least
  LoadGen's minimum count for its scenario (G314);
- a run is no older than the suite commit it names (G315);
- no episode decodes faster than the declared device class can (rules.yaml
  checker.device_classes, tokens per generation-ms) (T610);
- the samples a run issued are drawn as LoadGen draws them: Offline cycles through its loaded
  set (every sample issued floor or ceil of n/m times), Server and SingleStream draw uniformly
  (counts about Poisson: their index of dispersion near 1); copies of episodes, with any
  jitter, and cached repeats break both (T611);
- closed division: every performance and audit episode is the accuracy run's episode of the
  same sample, step for step (greedy decoding is deterministic): an episode that skips its
  tool calls or is another computation is not the system that was scored (T612).
"""
from __future__ import annotations

import math
import statistics
import subprocess
from collections import Counter
from functools import lru_cache

from compliance.checks import err
from compliance.checks.timing import _perf_runs, duration_ms, issued
from compliance.checks.traces import trace_records
from compliance.context import Ctx

MAX_FIGURE = 1e15        # ns, samples, tokens, per second: nothing a real run logs comes near
FIGURE_PREFIXES = ("result_", "generated_")
PERF_FIELDS = ("value", "mean_latency_ms", "p99_latency_ms")


def _bad_number(v) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None  # a flag or a string: other rules read it
    if not math.isfinite(v):
        return "not finite"
    if v < 0:
        return "negative"
    if v > MAX_FIGURE:
        return f"above {MAX_FIGURE:g}"
    return None


def figures_bounded(ctx: Ctx, rule: str):
    """every figure a run logs (the detail log's result_* and generated_* values) and every
    figure measurements.json states (performance value and latencies) is a finite,
    non-negative number no larger than 1e15 (ns, samples or per second: 1e300/s or a negative
    p90 is no run's), and a result's rate or latency is above zero."""
    for r in ctx.results:
        for base, _ in r.runs:
            rel = f"{base}/mlperf_log_detail.txt"
            d, _ = ctx.tree.mllog(rel)
            if d is None:
                continue
            for k, v in d.items():
                if not k.startswith(FIGURE_PREFIXES):
                    continue
                why = _bad_number(v[0])
                if why is None and k.startswith("result_") and k.endswith(("_sec", "_second",
                                                                           "_ns")) \
                        and isinstance(v[0], (int, float)) and not isinstance(v[0], bool) \
                        and v[0] <= 0 and "max" not in k and "min" not in k:
                    why = "not above zero"
                if why:
                    yield err(rule, rel, f"{k} is {why}", location=f"line {v[1]}",
                              expected=f"0 < x <= {MAX_FIGURE:g}", found=v[0])
                    break
        m = ctx.measurements(r)
        perf = m.get("performance") if isinstance(m, dict) else None
        if isinstance(perf, dict):
            for k in PERF_FIELDS:
                why = _bad_number(perf.get(k))
                if why is None and k == "value" and isinstance(perf.get(k), (int, float)) \
                        and perf[k] <= 0:
                    why = "not above zero"
                if why:
                    yield err(rule, r.file("measurements.json"), f"performance.{k} is {why}",
                              location=f"/performance/{k}", expected=f"0 < x <= {MAX_FIGURE:g}",
                              found=perf.get(k))


def _num(d: dict, key: str):
    v = d.get(key, (None,))[0]
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and \
        math.isfinite(v) else None


def schedule_and_counts(ctx: Ctx, rule: str):
    """LoadGen's schedule and counts, as a real run has them: the samples issued are at
    least LoadGen's minimum for the scenario (the logged effective_min_query_count, or
    effective_min_sample_count for Offline, and for Offline 1.1 x the expected rate x the min
    duration, as LoadGen sizes its one query); a Server run's generated_query_duration lasts at
    least the min duration and no longer than the run's own stamps, the run outlasts it by no
    more than its longest latency, and its completed rate is no higher than its scheduled rate
    (a sample completes after it is scheduled)."""
    tol = ctx.rules.checker["rate_tolerance_fraction"]
    for r, base, rel, d in _perf_runs(ctx):
        n, dur = issued(d), duration_ms(d)
        if n is None or not dur:
            continue  # G310's finding
        min_dur = _num(d, "effective_min_duration_ms")
        key = "effective_min_sample_count" if r.scenario == "Offline" else \
            "effective_min_query_count"
        need = _num(d, key) or 0
        if r.scenario == "Offline":
            qps = _num(d, "effective_target_qps")
            if qps and min_dur and "TEST04" not in base:
                need = max(need, math.floor(1.1 * qps * min_dur / 1000))
        if n < need:
            yield err(rule, rel, "fewer samples issued than LoadGen's minimum for the scenario",
                      expected=f">= {need}", found=n,
                      hint="LoadGen issues at least its minimum count; the log was edited")
        if r.scenario != "Server":
            continue
        gen = _num(d, "generated_query_duration")
        if gen is None:
            continue  # G310's finding
        if min_dur and gen < min_dur * 1e6 * (1 - tol):
            yield err(rule, rel, "the Server queries were generated for less than the min "
                      "duration", expected=f">= {min_dur * 1e6:.0f} ns", found=gen)
        if gen > dur * 1e6 * (1 + tol) + 5e6:
            yield err(rule, rel, "the Server queries were generated over longer than the run "
                      "lasted by its own stamps", expected=f"<= {dur * 1e6:.0f} ns", found=gen)
        mx = _num(d, "result_max_latency_ns")
        if mx is not None and (dur * 1e6 - gen) > mx * (1 + tol) + 50e6:
            yield err(rule, rel, "the run outlasted its query generation by more than its "
                      "longest latency", expected=f"stamps - generated_query_duration <= "
                      f"max latency {mx:.0f} ns", found=f"{dur * 1e6 - gen:.0f} ns",
                      hint="the last query is issued before generation ends and completes "
                           "within the longest latency")
        sched, compl = _num(d, "result_scheduled_samples_per_sec"), \
            _num(d, "result_completed_samples_per_sec")
        if sched and compl and compl > sched * (1 + tol):
            yield err(rule, rel, "the Server run completed samples faster than it scheduled "
                      "them", expected=f"<= {sched:.6g} (+{tol:.0%})", found=compl)


@lru_cache(maxsize=64)
def _commit_time(commit: str) -> float | None:
    """The commit's time in this suite's git history (None if it is not there)."""
    from reference.rules import ROOT
    try:
        out = subprocess.run(["git", "show", "-s", "--format=%ct", f"{commit}^{{commit}}", "--"],
                             cwd=ROOT, capture_output=True, text=True, timeout=10)
        return float(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def run_dates(ctx: Ctx, rule: str):
    """no run is older than the suite commit its result names (measurements.json commit,
    looked up in the suite's own git history): a log whose dates were moved back is not of
    that code."""
    from compliance.checks.identity import _when
    for r in ctx.results:
        m = ctx.measurements(r)
        commit = m.get("commit") if isinstance(m, dict) else None
        if not isinstance(commit, str) or not commit.isalnum() or not 7 <= len(commit) <= 40:
            continue
        when = _commit_time(commit)
        if when is None:
            continue
        for base, _ in r.runs:
            rel = f"{base}/mlperf_log_detail.txt"
            d, _ = ctx.tree.mllog(rel)
            v, line = (d or {}).get("test_datetime", (None, "?"))
            t = _when(v) if v is not None else None
            if t is not None and t < when - 60:
                yield err(rule, rel, "the run is older than the suite commit it names",
                          location=f"line {line}", expected=f"after commit {commit[:12]}",
                          found=v)
                break


def device_class(ctx: Ctx, system: str) -> tuple[str, dict]:
    """(class name, its rules.yaml checker.device_classes entry) of a system's declaration:
    a known accelerator by name, else 'cpu'; ('unknown', {}) for an accelerator not in the
    table."""
    classes = ctx.rules.checker.get("device_classes") or {}
    doc, _ = ctx.tree.json(f"systems/{system}.json")
    decl = doc.get("declaration") if isinstance(doc, dict) else None
    accel = decl.get("accelerator_model_name") if isinstance(decl, dict) else None
    return classify(classes, accel)


def classify(classes: dict, accel) -> tuple[str, dict]:
    if not isinstance(accel, str) or not accel.strip() or accel.strip().lower() in ("none", "n/a",
                                                                                    "cpu"):
        return "cpu", classes.get("cpu", {})
    name = accel.lower()
    for cls, spec in classes.items():
        if cls != "cpu" and any(p.lower() in name for p in spec.get("match", ())):
            return cls, spec
    return "unknown", {}


def decode_ceiling(ctx: Ctx, rule: str):
    """no episode of any run decodes faster than its declared device class can: its
    generated tokens per millisecond of generation time are at most rules.yaml
    checker.device_classes.<class>.max_tokens_per_generation_ms (an unknown accelerator is
    held to the fastest class's). A cached or invented episode costs no decoding."""
    classes = ctx.rules.checker.get("device_classes") or {}
    fastest = max((c.get("max_tokens_per_generation_ms", 0) for c in classes.values()),
                  default=0)
    for r in ctx.results:
        cls, spec = device_class(ctx, r.system)
        ceiling = spec.get("max_tokens_per_generation_ms") or fastest
        if not ceiling:
            continue
        for base, _ in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            for line, rec in trace_records(ctx, rel):
                ms = sum(s["generation_ms"] for s in rec["steps"])
                tok = rec["generated_tokens"]
                if tok > ceiling * ms:
                    yield err(rule, rel, "an episode decoded faster than its device class can",
                              location=f"line {line}",
                              expected=f"<= {ceiling} tokens per generation-ms ({cls})",
                              found=f"{tok} tokens in {ms:.3f} ms",
                              hint="every episode is decoded; a cached or invented one is not")
                    break


def sample_draws(ctx: Ctx, rule: str):
    """the samples of every performance and audit run (TEST04 excepted) are drawn as
    LoadGen draws them, judged by content (the sample index), not timing: Offline issues its
    loaded set in cycles (min(n, m) distinct samples, each issued floor or ceil of n/m times);
    Server and SingleStream draw uniformly with replacement, so the sample counts' index of
    dispersion over the m loaded samples stays below 1 + max(0.25, 6 sqrt(2/(m-1))) (copies of
    episodes, with any jitter, double it; cached repeats of a few samples raise it far more)."""
    for r, base, rel, d in _perf_runs(ctx):
        if base.endswith("TEST04"):
            continue
        m = _num(d, "effective_performance_sample_count")
        recs = trace_records(ctx, f"{base}/agent_trace.jsonl")
        if not recs or not m or m < 2 or m != int(m):
            continue
        m = int(m)
        counts = Counter(rec["qsl_idx"] for _, rec in recs)
        n = len(recs)
        trel = f"{base}/agent_trace.jsonl"
        if r.scenario == "Offline":
            lo, hi = n // m, -(-n // m)
            off = [(i, c) for i, c in counts.items() if not lo <= c <= hi] \
                if len(counts) == m else [(i, c) for i, c in counts.items() if c > hi]
            if len(counts) != min(n, m) or off:
                yield err(rule, trel, "the samples are not the cycles LoadGen issues offline",
                          expected=f"{min(n, m)} distinct samples, each {lo}-{hi} times",
                          found=f"{len(counts)} distinct" + (f", sample {off[0][0]} "
                                                             f"{off[0][1]} times" if off else ""),
                          hint="one episode per issued sample: copies and repeats are not")
            continue
        cells = list(counts.values()) + [0] * max(0, m - len(counts))
        mean = statistics.fmean(cells)
        disp = statistics.pvariance(cells) / mean if mean > 0 else 0.0
        limit = 1 + max(0.25, 6 * math.sqrt(2 / (m - 1)))
        if disp > limit:
            yield err(rule, trel, "the samples are not drawn as LoadGen draws them (repeated "
                      "episodes)", expected=f"index of dispersion <= {limit:.2f}",
                      found=f"{disp:.2f}", hint="one episode per issued sample: copies "
                      "(with or without jitter) and cached repeats are not")


def _content(rec) -> tuple:
    return (rec["answer"], rec["stop_reason"], rec["generated_tokens"],
            tuple((s["text"], s["tool"], s["tool_input"], s["observation"])
                  for s in rec["steps"]))


def performance_content_matches(ctx: Ctx, rule: str):
    """closed division: every performance and audit episode is, step for step (texts, tool
    calls, observations, answer, generated tokens), the accuracy run's episode of the same
    sample, as greedy decoding of one checkpoint gives; at most
    checker.closed_max_answer_mismatch_fraction of a run's episodes may differ."""
    limit = ctx.rules.checker["closed_max_answer_mismatch_fraction"]
    for r in ctx.results:
        m = ctx.measurements(r)
        if not isinstance(m, dict) or m.get("division") != "closed":
            continue
        acc: dict[int, tuple] = {}
        for _, rec in trace_records(ctx, f"{r.acc}/agent_trace.jsonl"):
            acc.setdefault(rec["qsl_idx"], _content(rec))
        if not acc:
            continue
        for base, mode in r.runs:
            if mode != "PerformanceOnly":
                continue
            rel = f"{base}/agent_trace.jsonl"
            recs = trace_records(ctx, rel)
            # compared outright: hashing every text to memoise costs more than comparing it
            bad = [line for line, rec in recs
                   if rec["qsl_idx"] in acc and _content(rec) != acc[rec["qsl_idx"]]]
            if len(bad) > limit * len(recs):
                yield err(rule, rel, f"{len(bad)} of {len(recs)} episodes are not the accuracy "
                          "run's episode of their sample", location=f"line {bad[0]}",
                          expected="the same steps, tool calls and answer",
                          hint="greedy decoding of one checkpoint computes each sample the "
                               "same way in every run")
