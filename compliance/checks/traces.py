"""T6xx: agent traces, against their schema, LoadGen's logs and the reference tools."""
from __future__ import annotations

from compliance.checks import err
from compliance.evidence import parse_accuracy_log
from compliance.context import Ctx
from compliance.tracecheck import RECORD_KEYS, parse_trace, parse_trace_bytes, record_problem
from loadgen_harness.untrusted.tree import _lines, has_duplicate_keys

TIME_SLACK_MS = 1.0       # rounding of the logged milliseconds


def _budget_left(ctx: Ctx, rel: str) -> bool:
    """Whether this trace is within the submission's record budget (T609 reports the rest)."""
    return rel not in _trace_budget(ctx)


def trace_records(ctx: Ctx, rel: str):
    """Well-formed records of a trace as (line, record), validated once per file. Traces past
    the submission's record budget (rules.yaml checker.max_trace_records) yield none."""
    return ctx.tree.memo(("trace_records", rel), lambda: [
        (line, rec) for line, rec, problem in checked_trace_rows(ctx, rel) if not problem])


def checked_trace_rows(ctx: Ctx, rel: str):
    """Every line of a trace as (line, record, problem), each record checked once."""
    return ctx.tree.memo(("trace_rows", rel), lambda: _check_rows(ctx, rel))


def adopt_trace_rows(ctx: Ctx, rel: str, rows: list) -> None:
    """checked_trace_rows(ctx, rel) as computed by a forked copy of this check (the same
    code on the same bytes: compliance.parallel), so this process need not parse it again."""
    ctx.tree.memo(("trace_rows", rel), lambda: rows)


def _check_rows(ctx: Ctx, rel: str) -> list:
    """A trace past the record budget, or unreadable, gives no rows. One parse of the whole
    trace when every line is well formed (parse_trace); else line by line, each line's problem
    its own."""
    if not _budget_left(ctx, rel):
        return []
    data, _ = ctx.tree.bytes(rel)
    fast = parse_trace_bytes(data) if data else None
    if fast is None:
        text, _ = ctx.tree.text(rel)
        lines = _lines(text) if text else []
        fast = parse_trace(lines)
    if fast is not None:
        return [(line, rec, "") for line, rec in fast]
    rows, _ = ctx.tree.json_lines(rel)
    out = []
    for line, rec, problem in rows or ():
        problem = problem or record_problem(rec) or ""
        if not problem and has_duplicate_keys(
                lines[line - 1], len(RECORD_KEYS) + sum(len(s) for s in rec["steps"])):
            problem = "a field is given twice (duplicate JSON key)"
        out.append((line, rec, problem))
    return out


def _trace_budget(ctx: Ctx):
    """Mark the traces past the record budget (counted by lines, before any is parsed)."""
    return ctx.tree.memo(("over_budget",), lambda: _over_budget(ctx))


def _over_budget(ctx: Ctx) -> tuple:
    left = int(ctx.rules.checker["max_trace_records"])
    over = []
    for r in ctx.results:
        splits = ctx.rules.benchmark(r.benchmark).splits or {}
        for rel in [f"{base}/agent_trace.jsonl" for base, _ in r.runs] + \
                [f"{r.acc}/{name}/agent_trace.jsonl" for name in sorted(splits)]:
            data, _ = ctx.tree.bytes(rel)
            n = 0 if data is None else data.count(b"\n") + (not data.endswith(b"\n"))
            if n > left:
                over.append(rel)
                left = 0
            else:
                left -= n
    return tuple(over)


def trace_budget(ctx: Ctx, rule: str):
    """the submission can be verified at a bounded cost: its traces hold at most
    rules.yaml checker.max_trace_records episodes in all, T605 re-executes at most
    checker.max_reexecuted_tool_calls tool calls per result, and re-verifying its programs
    takes at most checker.max_sandbox_s of sandbox time (and, in a leaderboard, what is left of
    checker.max_sandbox_s_leaderboard). Past a cap the rest is not verified and the
    submission is invalid."""
    for rel in _trace_budget(ctx):
        yield err(rule, rel, "the traces hold more episodes than the checker verifies",
                  expected=f"<= {ctx.rules.checker['max_trace_records']} episodes in all",
                  hint="an honest run's trace holds one episode per issued sample")


def trace_schema(ctx: Ctx, rule: str):
    """every line of every agent trace is a well-formed episode record (the trace
    schema, checked structurally: every number finite, integers JSON integers) of the run's
    test mode."""
    _trace_budget(ctx)
    for r in ctx.results:
        for base, mode in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            if not _budget_left(ctx, rel):
                continue
            text, problem = ctx.tree.text(rel)  # within the budget: checked above
            if text is None:
                if ctx.tree.kind(rel) != "missing":
                    yield err(rule, rel, f"trace unreadable: {problem}")
                continue
            if not checked_trace_rows(ctx, rel):
                yield err(rule, rel, "the trace is empty", expected=">= 1 episode", found=0)
            shown = 0
            for line, rec, problem in checked_trace_rows(ctx, rel):
                if problem:
                    yield err(rule, rel, f"malformed episode record: {problem}",
                              location=f"line {line}")
                elif rec["mode"] != mode:
                    yield err(rule, rel, "the trace is of another test mode",
                              location=f"line {line} /mode", expected=mode, found=rec["mode"])
                else:
                    continue
                shown += 1
                if shown >= 5:  # enough to see the pattern; the rest would only be noise
                    break


def trace_matches_accuracy_log(ctx: Ctx, rule: str):
    """the accuracy trace has the accuracy log's samples, with the same final answers."""
    for r in ctx.results:
        rel = f"{r.acc}/agent_trace.jsonl"
        entries, _ = parse_accuracy_log(ctx, r)
        recs = trace_records(ctx, rel)
        if entries is None or not recs:
            continue
        logged = {}
        for idx, answer, _ in entries:
            logged.setdefault(idx, answer)
        traced = {}
        tasks = ctx.tasks(r.benchmark)
        for line, rec in recs:
            traced.setdefault(rec["qsl_idx"], (rec["answer"] or "", line))
            i = rec["qsl_idx"]
            if 0 <= i < len(tasks) and (rec["task_id"] != tasks[i].id
                                        or rec["question"] != tasks[i].question):
                yield err(rule, rel, "the episode is not the sample's task",
                          location=f"line {line}", expected=tasks[i].id, found=rec["task_id"])
        if set(traced) != set(logged):
            yield err(rule, rel, "the trace and the accuracy log cover different samples",
                      expected=f"{len(logged)} samples of the accuracy log",
                      found=f"{len(set(traced) ^ set(logged))} differ")
        for idx, (answer, line) in traced.items():
            if idx in logged and logged[idx] != answer:
                yield err(rule, rel, "the traced final answer differs from the accuracy log",
                          location=f"line {line}", expected=logged[idx], found=answer)
                break
        workload = ctx.workload(r.benchmark)
        for line, rec in recs:  # e.g. nano-codegen: the logged program is the last attempt
            problem = workload.payload_problem(rec)
            if problem:
                message, expected = problem
                yield err(rule, rel, message, location=f"line {line} /answer",
                          expected=expected, found=rec["answer"])
                break


def trace_matches_performance_logs(ctx: Ctx, rule: str):
    """(performance and audit runs): the trace has one episode per sample LoadGen issued."""
    for r in ctx.results:
        for base, mode in r.runs:
            if mode != "PerformanceOnly":
                continue
            d, _ = ctx.tree.mllog(f"{base}/mlperf_log_detail.txt")
            rel = f"{base}/agent_trace.jsonl"
            if d is None or not _budget_left(ctx, rel) or ctx.tree.text(rel)[0] is None:
                continue
            rows = checked_trace_rows(ctx, rel)
            q = d.get("generated_query_count", (None,))[0]
            spq = d.get("generated_samples_per_query", (None,))[0]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (q, spq)):
                yield err(rule, f"{base}/mlperf_log_detail.txt",
                          "the log does not say how many samples were issued",
                          expected="generated_query_count, generated_samples_per_query")
                continue
            if len(rows) != q * spq:
                yield err(rule, f"{base}/agent_trace.jsonl",
                          "the trace does not hold one episode per issued sample",
                          expected=q * spq, found=len(rows))


def step_bounds(ctx: Ctx, rule: str):
    """no episode takes more steps than the benchmark's max_steps, and no step generates
    more tokens than its max_step_tokens (both from rules.yaml, as the harness runs them)."""
    for r in ctx.results:
        bench = ctx.rules.benchmark(r.benchmark)
        for base, _ in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            for line, rec in trace_records(ctx, rel):
                if len(rec["steps"]) > bench.max_steps:
                    yield err(rule, rel, "more steps than max_steps", location=f"line {line}",
                              expected=f"<= {bench.max_steps}", found=len(rec["steps"]))
                    break
                longest = max((s["generated_tokens"] for s in rec["steps"]), default=0)
                if longest > bench.max_step_tokens:
                    yield err(rule, rel, "a step generated more tokens than max_step_tokens",
                              location=f"line {line}", expected=f"<= {bench.max_step_tokens}",
                              found=longest)
                    break


def step_times_add_up(ctx: Ctx, rule: str):
    """per-step generation and tool times fit within the episode's time, and a constrained
    step's mask time within its generation time, its executor time within its tool time."""
    for r in ctx.results:
        for base, _ in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            for line, rec in trace_records(ctx, rel):
                total = sum(s["generation_ms"] + s["tool_ms"] for s in rec["steps"])
                if total > rec["latency_ms"] + TIME_SLACK_MS:
                    yield err(rule, rel, "step times add up to more than the episode time",
                              location=f"line {line}", expected=f"<= {rec['latency_ms']} ms",
                              found=f"{total:.3f} ms")
                    break
                # every step of a record has the same fields (T601): a constrained one has both
                part = next(((i, k, s[k], s[whole]) for i, s in enumerate(rec["steps"])
                             for k, whole in (("mask_ms", "generation_ms"),
                                              ("executor_ms", "tool_ms"))
                             if s[k] > s[whole] + TIME_SLACK_MS), None) \
                    if "mask_ms" in rec["steps"][0] else None
                if part:
                    i, k, v, w = part
                    yield err(rule, rel, f"a step's {k} is more than the time it is part of",
                              location=f"line {line}, step {i}", expected=f"<= {w} ms",
                              found=f"{v} ms")
                    break


def tool_calls_reexecuted(ctx: Ctx, rule: str):
    """every tool call in the traces, re-executed, gives the logged observation
    (nano-react: the reference tools; nano-codegen: every attempt's program verified again in
    the sandbox against the task's expected output gives the logged feedback). At most
    rules.yaml checker.max_reexecuted_tool_calls calls per result are re-executed; past that
    T609 reports the rest unchecked."""
    seen: dict[tuple, tuple] = {}  # a call's verdict depends only on these (tools are pure)
    for r in ctx.results:
        budget = limit = int(ctx.rules.checker["max_reexecuted_tool_calls"])
        tasks = ctx.tasks(r.benchmark)
        for base, _ in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            for line, rec in trace_records(ctx, rel):
                if budget < 0:
                    break
                if not 0 <= rec["qsl_idx"] < len(tasks):
                    continue  # T602's finding
                for i, s in enumerate(rec["steps"]):
                    if s["tool"] is None or s["tool_input"] is None:
                        continue
                    budget -= 1
                    if budget < 0:
                        yield err("T609", rel, "more tool calls than the checker re-executes",
                                  location=f"line {line}", expected=f"<= {limit} per result",
                                  hint="the remaining calls were not verified")
                        break
                    task = tasks[rec["qsl_idx"]]
                    k = (r.benchmark, task.answer, s["tool"], s["tool_input"], s["observation"])
                    if k not in seen:
                        seen[k] = ctx.grader.observation_matches(
                            r.benchmark, task, s["tool"], s["tool_input"], s["observation"])
                    same, obs = seen[k]
                    if not same:
                        yield err(rule, rel, "a tool observation does not match re-execution",
                                  location=f"line {line} /steps/{i}", expected=obs,
                                  found=s["observation"])
                        break
