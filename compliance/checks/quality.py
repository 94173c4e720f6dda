"""Q4xx: quality, recomputed from mlperf_log_accuracy.json and the frozen set (section 2)."""
from __future__ import annotations

import math

from compliance.checks import err
from compliance.context import Ctx
from compliance.evidence import HEX, MAX_ANSWER_BYTES, parse_accuracy_log

def accuracy_log_wellformed(ctx: Ctx, rule: str):
    """the accuracy log is a list of {qsl_idx, data: hex} entries."""
    for r in ctx.results:
        rel = f"{r.acc}/mlperf_log_accuracy.json"
        if ctx.tree.kind(rel) == "missing":
            continue
        _, problem = parse_accuracy_log(ctx, r)
        if problem:
            yield err(rule, rel, f"accuracy log malformed: {problem}",
                      hint="the accuracy log is LoadGen's; do not edit it")


def _expected_count(ctx: Ctx, r) -> int:
    prof = ctx.rules.profile(ctx.profile_of(r))
    return prof.accuracy_sample_count or ctx.rules.benchmark(r.benchmark).eval_set_size


def sample_coverage(ctx: Ctx, rule: str):
    """every sample the profile requires is logged exactly once, none out of range."""
    for r in ctx.results:
        rel = f"{r.acc}/mlperf_log_accuracy.json"
        entries, _ = parse_accuracy_log(ctx, r)
        if entries is None:
            continue
        n_tasks = len(ctx.tasks(r.benchmark))
        seen: dict[int, int] = {}
        for idx, _, pos in entries:
            if not 0 <= idx < n_tasks:
                yield err(rule, rel, "sample index out of range", location=f"/{pos}/qsl_idx",
                          expected=f"0..{n_tasks - 1}", found=idx)
            seen[idx] = seen.get(idx, 0) + 1
        dup = [i for i, c in seen.items() if c > 1]
        if dup:
            yield err(rule, rel, "samples logged more than once", found=f"{len(dup)} samples, "
                      f"first {dup[0]}")
        need = _expected_count(ctx, r)
        if len(seen) != need:
            yield err(rule, rel, "the accuracy run does not cover the required samples",
                      expected=f"{need} distinct samples", found=len(seen))


def _recomputed(ctx: Ctx, r):
    entries, _ = parse_accuracy_log(ctx, r)
    if entries is None:
        return None
    tasks = ctx.tasks(r.benchmark)
    first: dict[int, str] = {}
    for idx, answer, _ in entries:
        if 0 <= idx < len(tasks):
            first.setdefault(idx, answer)
    correct = sum(1 for i, a in first.items() if ctx.grader.correct(r.benchmark, tasks[i], a))
    return correct / _expected_count(ctx, r), correct, sorted(first)


def quality_target(ctx: Ctx, rule: str):
    """the recomputed quality (nano-react: exact match; nano-codegen: the logged programs
    re-run in the sandbox, pass within the attempt bound) reaches the quality target."""
    for r in ctx.results:
        got = _recomputed(ctx, r)
        if got is None:
            continue
        bench = ctx.rules.benchmark(r.benchmark)
        target = (bench.subset_target(got[2]) if ctx.profile_of(r) != "official"
                  else bench.quality_target)
        if got[0] < target:
            yield err(rule, f"{r.acc}/mlperf_log_accuracy.json", "quality below the target",
                      expected=f">= {target:.4f}", found=f"{got[0]:.4f}",
                      hint="recomputed from the accuracy log against the frozen set; a subset "
                           "(smoke) is held to the reference's accuracy on the same samples")


def accuracy_json_agrees(ctx: Ctx, rule: str):
    """accuracy.json and measurements.json state the recomputed accuracy, under the
    benchmark's quality metric name."""
    for r in ctx.results:
        got = _recomputed(ctx, r)
        if got is None:
            continue
        for rel, pointer in ((f"{r.acc}/accuracy.json", ""),
                             (r.file("measurements.json"), "/accuracy")):
            doc, problem = ctx.tree.json(rel)
            if doc is None:
                if ctx.tree.kind(rel) != "missing":  # missing: L101's finding
                    yield err(rule, rel, f"unreadable: {problem}")
                continue
            part = doc.get("accuracy") if pointer and isinstance(doc, dict) else doc
            metric = ctx.rules.benchmark(r.benchmark).quality_metric
            if isinstance(part, dict) and part.get("metric") != metric:
                yield err(rule, rel, "the stated quality metric is not the benchmark's",
                          location=f"{pointer}/metric", expected=metric, found=part.get("metric"))
            claimed = part.get(metric) if isinstance(part, dict) else None
            if not isinstance(claimed, (int, float)) or isinstance(claimed, bool) or \
                    not math.isclose(claimed, round(got[0], 4), abs_tol=1e-4):
                yield err(rule, rel, "the stated accuracy differs from the accuracy log",
                          location=f"{pointer}/{metric}", expected=f"{got[0]:.4f}",
                          found=claimed)


def reference_weights(ctx: Ctx, rule: str):
    """closed-division results ran the reference checkpoint."""
    for r in ctx.results:
        m = ctx.measurements(r)
        if m is None:
            continue
        want = ctx.rules.benchmark(r.benchmark).reference_checkpoint_sha256
        division = m.get("division")
        if division not in ("closed", "open"):
            yield err(rule, r.file("measurements.json"), "unknown division",
                      location="/division", expected="closed or open", found=division)
        elif division == "closed" and m.get("checkpoint_sha256") != want:
            yield err(rule, r.file("measurements.json"),
                      "closed division requires the reference checkpoint",
                      location="/checkpoint_sha256", expected=want,
                      found=m.get("checkpoint_sha256"))


def split_quality(ctx: Ctx, rule: str):
    """each of the benchmark's further frozen splits (rules.yaml `splits`, e.g. the
    generalisation split) has its own accuracy run (accuracy/<split>/) whose log is well formed,
    covers the profile's samples once each, reaches the split's target (recomputed; a smoke
    subset against the reference's accuracy on the same samples) and is what its
    accuracy.json states; the run's trace gives the logged answers."""
    for r in ctx.results:
        bench = ctx.rules.benchmark(r.benchmark)
        for name, split in (getattr(bench, "splits", None) or {}).items():
            base = f"{r.acc}/{name}"
            rel = f"{base}/mlperf_log_accuracy.json"
            data, problem = ctx.tree.json(rel)
            if data is None:
                yield err(rule, rel, f"the {name} split's accuracy log is missing or "
                          f"unreadable: {problem}", hint="make submission writes it")
                continue
            tasks = ctx.split_tasks(r.benchmark, name)
            first: dict[int, str] = {}
            bad = not isinstance(data, list)
            for e in data if isinstance(data, list) else []:
                if not (isinstance(e, dict) and type(e.get("qsl_idx")) is int
                        and 0 <= e["qsl_idx"] < len(tasks) and isinstance(e.get("data"), str)
                        and HEX.match(e["data"]) and len(e["data"]) <= 2 * MAX_ANSWER_BYTES
                        and e["qsl_idx"] not in first):
                    bad = True
                    break
                first[e["qsl_idx"]] = bytes.fromhex(e["data"]).decode("utf-8", errors="replace")
            prof = ctx.rules.profile(ctx.profile_of(r))
            need = min(prof.accuracy_sample_count or split.eval_set_size, split.eval_set_size)
            if bad or len(first) != need:
                yield err(rule, rel, f"the {name} split's accuracy log is malformed or does not "
                          "cover its samples once each", expected=f"{need} distinct samples",
                          found=len(first))
                continue
            correct = sum(1 for i, a in first.items()
                          if ctx.grader.correct(r.benchmark, tasks[i], a))
            got = correct / need
            target = split.quality_target if need == split.eval_set_size else \
                split.subset_target(sorted(first))
            if got < target:
                yield err(rule, rel, f"the {name} split's quality is below its target",
                          expected=f">= {target:.4f}", found=f"{got:.4f}")
            doc, _ = ctx.tree.json(f"{base}/accuracy.json")
            claimed = doc.get(bench.quality_metric) if isinstance(doc, dict) else None
            if not isinstance(claimed, (int, float)) or isinstance(claimed, bool) or \
                    not math.isclose(claimed, round(got, 4), abs_tol=1e-4):
                yield err(rule, f"{base}/accuracy.json", f"the {name} split's stated accuracy "
                          "differs from its log", expected=f"{got:.4f}", found=claimed)
            from compliance.checks.traces import trace_records
            # well-formed records only; past the record budget none (T609's finding)
            traced = {rec["qsl_idx"]: rec["answer"] or "" for _, rec in
                      trace_records(ctx, f"{base}/agent_trace.jsonl")
                      if rec["mode"] == "AccuracyOnly"}
            yield from _split_log(ctx, rule, r, name, f"{base}/mlperf_log_detail.txt")
            if traced != first:
                yield err(rule, f"{base}/agent_trace.jsonl", f"the {name} split's trace does "
                          "not give the logged answers", expected=f"{len(first)} episodes",
                          found=f"{len(traced)} episodes")


def _split_log(ctx: Ctx, rule: str, r, name: str, rel: str):
    """The split run's detail log: well formed, an AccuracyOnly run of the result's scenario,
    with the official seeds, from the pinned LoadGen."""
    d, problem = ctx.tree.mllog(rel)
    if d is None:
        yield err(rule, rel, f"the {name} split's detail log is missing or unreadable: {problem}")
        return
    problems = [f"{d['__counts__'][k]} {what}" for k, what in
                (("__bad_lines__", "malformed lines"), ("__dups__", "repeated keys"),
                 ("__errors__", "errors"), ("__time_problems__", "bad time stamps")) if d[k]]
    want = {"effective_test_mode": "AccuracyOnly", "effective_scenario": r.scenario,
            "loadgen_version": ctx.rules.loadgen_version,
            **{f"effective_{k}": v for k, v in ctx.rules.official_seeds.items()}}
    problems += [f"{k} {d.get(k, (None,))[0]!r}" for k, v in want.items()
                 if d.get(k, (None,))[0] != v]
    if problems:
        yield err(rule, rel, f"the {name} split's detail log is not a clean accuracy run of "
                  "this result", found="; ".join(problems)[:300])


_TIMES = frozenset(("generation_ms", "tool_ms", "mask_ms", "executor_ms"))


def quality_bounds(ctx: Ctx, rule: str):
    """a benchmark's further quality figures (rules.yaml `quality.bounds`; nano-planner's
    bad-task and completion rates), recomputed from the accuracy run's trace (whose answers
    T602 ties to the accuracy log, and whose tool calls T605 re-executes), are within their
    bounds (a subset run: the looser of the bound and the reference's figure on the same
    samples) and are what accuracy.json states."""
    from compliance.checks.traces import trace_records
    from reference.grading import bounded_quality
    for r in ctx.results:
        bench = ctx.rules.benchmark(r.benchmark)
        if not bench.quality_bounds:
            continue
        entries, _ = parse_accuracy_log(ctx, r)
        if entries is None:
            continue  # Q401's finding
        tasks = ctx.tasks(r.benchmark)
        logged = {idx for idx, _, _ in entries if 0 <= idx < len(tasks)}
        steps: dict[int, list] = {}
        for _, rec in trace_records(ctx, f"{r.acc}/agent_trace.jsonl"):
            if rec["mode"] == "AccuracyOnly" and rec["qsl_idx"] in logged \
                    and rec["qsl_idx"] not in steps:  # a quality figure never reads a time
                steps[rec["qsl_idx"]] = [{k: v for k, v in s.items() if k not in _TIMES}
                                         for s in rec["steps"]]
        if not steps or len(steps) != len(logged):
            continue  # T602's finding: the trace does not give the logged episodes
        # the scenarios' accuracy runs of one benchmark are one greedy computation: scored once
        done = ctx.tree.memo(("bounded_quality", r.benchmark), list)
        got = next((g for s, g in done if s == steps), None)
        if got is None:
            got = bounded_quality(r.benchmark, bench.quality_bounds, tasks, steps,
                                  bench.reference_results, len(tasks))
            done.append((steps, got))
        for name, b in got.items():
            kind = "max" if "max" in b else "min"
            if not b["ok"]:
                yield err(rule, f"{r.acc}/agent_trace.jsonl", f"{name} outside its bound",
                          expected=f"{'<=' if kind == 'max' else '>='} {b[kind]:.4f}",
                          found=f"{b['value']:.4f}",
                          hint="recomputed from the accuracy run's logged steps")
        for rel, pointer in ((f"{r.acc}/accuracy.json", ""),
                             (r.file("measurements.json"), "/accuracy")):
            doc, _ = ctx.tree.json(rel)
            part = doc.get("accuracy") if pointer and isinstance(doc, dict) else doc
            stated = part.get("bounds") if isinstance(part, dict) else None
            for name, b in got.items():
                claim = stated.get(name) if isinstance(stated, dict) else None
                value = claim.get("value") if isinstance(claim, dict) else None
                if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                        not math.isclose(value, b["value"], abs_tol=1e-4):
                    yield err(rule, rel, f"the stated {name} differs from the trace",
                              location=f"{pointer}/bounds/{name}/value",
                              expected=f"{b['value']:.4f}", found=value)
