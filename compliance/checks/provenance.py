"""Q406-Q407: where the answers came from (rules.md sections 5 and 9).

A quality figure proves nothing if the answers were copied from the evaluation set: the
closed division runs one fixed checkpoint greedily, so its answers are the reference
checkpoint's; and in every division a correct answer must have been computed by the agent
loop (nano-react: read from a tool's observation after the task's tool calls; nano-codegen: a
program that computes, not one that assigns the expected value as a literal).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from compliance.checks import err
from compliance.evidence import parse_accuracy_log
from compliance.checks.traces import trace_records
from compliance.context import Ctx

@lru_cache(maxsize=4)
def _reference_answers(path: Path) -> dict[int, str]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {int(r["qsl_idx"]): r["answer"] for r in rows}


def closed_answers_match_reference(ctx: Ctx, rule: str):
    """closed-division answers are the reference checkpoint's: greedy decoding of the
    same weights with the same tools gives the same answer for every sample (the reference's
    answers are committed beside the evaluation set). At most
    checker.closed_max_answer_mismatch_fraction of them may differ."""
    limit = ctx.rules.checker["closed_max_answer_mismatch_fraction"]
    for r in ctx.results:
        m = ctx.measurements(r)
        if m is None or m.get("division") != "closed":
            continue
        entries, _ = parse_accuracy_log(ctx, r)
        if not entries:
            continue
        ref = _reference_answers(ctx.rules.benchmark(r.benchmark).reference_results)
        first: dict[int, str] = {}
        for idx, answer, _ in entries:
            first.setdefault(idx, answer)
        differ = [i for i, a in first.items() if i in ref and ref[i] != a]
        if len(differ) > limit * len(first):
            i = differ[0]
            yield err(rule, f"{r.acc}/mlperf_log_accuracy.json",
                      f"{len(differ)} of {len(first)} answers are not the reference checkpoint's",
                      location=f"sample {i}", expected=ref[i][:200], found=first[i][:200],
                      hint="the closed division runs the reference checkpoint, greedily")


def answers_computed(ctx: Ctx, rule: str):
    """every correct answer of the accuracy run was computed by the agent loop.
    nano-react: the episode made at least the task's number of tool calls and its final answer
    is one of its tools' observations. nano-codegen: the passing program computes (a program
    that only assigns literals states the expected output instead of computing it)."""
    for r in ctx.results:
        tasks = ctx.tasks(r.benchmark)
        workload = ctx.workload(r.benchmark)
        rel = f"{r.acc}/agent_trace.jsonl"
        for line, rec in trace_records(ctx, rel):
            i = rec["qsl_idx"]
            if not 0 <= i < len(tasks):
                continue
            finding = workload.uncomputed_answer(ctx.grader, tasks[i], rec)
            if finding:
                message = finding.pop("message")
                yield err(rule, rel, message, location=f"line {line}", **finding)
                break
