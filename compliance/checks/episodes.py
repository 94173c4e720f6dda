"""T606-T608: the episodes of the traces are genuine: distinct, self-consistent, of this run,
and answering as the accuracy run did (rules.md section 9).

A trace is evidence only if it could not have been assembled from other evidence: copies of
one episode, another run's episodes, or answers that differ from the accuracy run's all betray
a trace that no run of this submission produced.
"""
from __future__ import annotations

from collections import Counter

from compliance.checks import err
from compliance.evidence import parse_accuracy_log
from compliance.checks.traces import checked_trace_rows, trace_records
from compliance.context import Ctx



def _fingerprint(rec) -> tuple:
    """What two honest episodes never share: the sample and every measured time."""
    return (rec["qsl_idx"], rec["latency_ms"],
            tuple((s["generation_ms"], s["tool_ms"]) for s in rec["steps"]))


def _perf_log(ctx: Ctx, base: str):
    d, _ = ctx.tree.mllog(f"{base}/mlperf_log_detail.txt")
    return d


def trace_episodes_distinct(ctx: Ctx, rule: str):
    """every trace is the record of one run: completion numbers `seq` run 0..n-1 once
    each; no episode is repeated (the same sample with the same timings) beyond a tiny
    fraction, and none appears in two runs; a performance run covers about as many distinct
    samples as LoadGen's random choice from its loaded set gives (at least half of the
    expected number)."""
    max_dup = ctx.rules.checker["max_duplicate_episode_fraction"]
    owner: dict[tuple, str] = {}
    for r in ctx.results:
        for base, mode in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            recs = trace_records(ctx, rel)
            if not recs:
                continue
            rows = checked_trace_rows(ctx, rel)
            seqs = sorted(rec["seq"] for _, rec in recs)
            if len(rows or ()) == len(recs) and seqs != list(range(len(recs))):  # else T601
                yield err(rule, rel, "the episodes' seq numbers are not 0..n-1, once each",
                          expected=f"0..{len(recs) - 1}", found=f"{len(set(seqs))} distinct values")
            counts = Counter(_fingerprint(rec) for _, rec in recs)
            dups = sum(c - 1 for c in counts.values())
            if dups > max(2, max_dup * len(recs)):
                yield err(rule, rel, "the trace repeats episodes (same sample, same timings)",
                          expected=f"<= {max_dup:.0%} repeated", found=f"{dups} repeats",
                          hint="a trace is the record of a run, one line per issued sample")
            crossed = next((owner[fp] for fp in counts if fp in owner), None)
            if crossed is not None:
                yield err(rule, rel, "the trace shares episodes with another run",
                          found=crossed, hint="each run writes its own trace")
            for fp in counts:
                owner.setdefault(fp, rel)
            if mode != "PerformanceOnly" or base.endswith("TEST04"):
                continue
            d = _perf_log(ctx, base)
            m = d.get("effective_performance_sample_count", (None,))[0] if d else None
            if not isinstance(m, int) or isinstance(m, bool) or m <= 0:
                continue  # G3xx reports the log
            n = len(recs)
            expected = m * (1 - (1 - 1 / m) ** n)  # drawn with replacement: the fewest
            distinct = len({rec["qsl_idx"] for _, rec in recs})
            if distinct < 0.5 * expected:
                yield err(rule, rel, "the trace covers far fewer distinct samples than "
                          "LoadGen issues", expected=f"about {expected:.0f} distinct samples",
                          found=distinct)


def _step_problem(workload, s: dict, seen: dict) -> tuple[int, str | None]:
    """(UTF-8 byte length of the step's text, workload.step_problem) memoised by (text, tool,
    tool_input), all that step_problem is given: an episode's steps recur across the runs of a
    result (57 k planner steps, 9 k distinct texts; T607 1.6 s -> 0.5 s)."""
    key = (s["text"], s["tool"], s["tool_input"])
    got = seen.get(key)
    if got is None:
        got = seen[key] = (len(s["text"].encode("utf-8")), workload.step_problem(
            {"text": s["text"], "tool": s["tool"], "tool_input": s["tool_input"]}))
    return got


def _answer_problem(workload, rec: dict, seen: dict) -> str | None:
    """workload.answer_problem memoised by what it is given: the stop reason, the answer and
    the last step's text (a workload that reads more fails loudly: X901)."""
    key = (rec["stop_reason"], rec["answer"], rec["steps"][-1]["text"])
    if key not in seen:
        seen[key] = workload.answer_problem({"stop_reason": key[0], "answer": key[1],
                                             "steps": [{"text": key[2]}]})
    return seen[key]


_TOKENS_PROBLEM = "generated_tokens is not the byte length of the step's text (byte-level tokens)"


def trace_self_consistent(ctx: Ctx, rule: str):
    """every episode agrees with itself and with its sample: the task and question are
    the sample's; the episode's generated tokens are the sum of its steps'; each step's tool
    call is the one its text writes; the answer is the one its text writes; context tokens only
    grow; in the closed division (byte-level tokens) each step's generated tokens are its
    text's UTF-8 byte length."""
    for r in ctx.results:
        tasks = ctx.tasks(r.benchmark)
        workload = ctx.workload(r.benchmark)
        m = ctx.measurements(r) or {}
        closed = m.get("division") == "closed"
        seen: dict = {}
        answers: dict = {}
        for base, _ in r.runs:
            rel = f"{base}/agent_trace.jsonl"
            for line, rec in trace_records(ctx, rel):
                i = rec["qsl_idx"]
                steps = rec["steps"]
                total, last, shrinks = 0, -1, False  # one pass over the steps' numbers
                for s in steps:
                    total += s["generated_tokens"]
                    c = s["context_tokens"]
                    shrinks = shrinks or c < last
                    last = c
                problem = None
                if not 0 <= i < len(tasks):
                    problem = "the sample index is out of range"
                elif rec["task_id"] != tasks[i].id or rec["question"] != tasks[i].question:
                    problem = f"the episode is not sample {i}'s task"
                elif rec["generated_tokens"] != total:
                    problem = "the episode's generated tokens are not the sum of its steps'"
                elif shrinks:
                    problem = "context tokens shrink from one step to the next"
                elif (p := _answer_problem(workload, rec, answers)):
                    problem = p
                else:
                    for s in steps:
                        got = seen.get((s["text"], s["tool"], s["tool_input"]))
                        n_bytes, p = got if got is not None else \
                            _step_problem(workload, s, seen)
                        if closed and s["generated_tokens"] != n_bytes:
                            problem = _TOKENS_PROBLEM
                            break
                        if p:
                            problem = p
                            break
                if problem:
                    yield err(rule, rel, problem, location=f"line {line}",
                              hint="a trace is written by the harness, never by hand")
                    break


def performance_answers_match(ctx: Ctx, rule: str):
    """every episode of a performance or audit run answers as the accuracy run answered
    the same sample (greedy decoding of the same model is deterministic; a performance run
    that computes something else is not the system that was scored)."""
    for r in ctx.results:
        entries, _ = parse_accuracy_log(ctx, r)
        if entries is None:
            continue
        logged: dict[int, str] = {}
        for idx, answer, _ in entries:
            logged.setdefault(idx, answer)
        for base, mode in r.runs:
            if mode != "PerformanceOnly":
                continue
            rel = f"{base}/agent_trace.jsonl"
            recs = trace_records(ctx, rel)
            bad = [(line, rec) for line, rec in recs
                   if rec["qsl_idx"] in logged and (rec["answer"] or "") != logged[rec["qsl_idx"]]]
            if bad:
                line, rec = bad[0]
                yield err(rule, rel, f"{len(bad)} episodes answer differently from the "
                          "accuracy run", location=f"line {line}",
                          expected=logged[rec["qsl_idx"]][:200], found=(rec["answer"] or "")[:200])
