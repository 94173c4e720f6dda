"""nano-react's evaluation report: one row per episode, the summary, and its printed tables.

    rows = [report_row(task, result) for ...]; summary = summarize(rows); print_report(summary)

Used by reference.evaluate through the workload registry (reference/workloads.py).
"""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict


def classify_failure(result, task) -> str | None:
    """None for a correct episode, else a short failure category."""
    if result.answer == task.answer:
        return None
    if result.stop_reason != "final_answer":
        return result.stop_reason
    if any(s.observation and s.observation.startswith("Error:") for s in result.steps):
        return "wrong_answer_after_tool_error"
    quoted = set(re.findall(r"'([^']*)'", task.question))
    if any(s.tool == "string_length" and s.tool_input not in quoted for s in result.steps):
        return "copied_a_wrong_string"
    if result.answer in {s.observation for s in result.steps}:
        return "answered_an_intermediate_observation"
    return "wrong_answer"


def report_row(task, res) -> dict:
    """One nano-react episode as a report row."""
    failure = classify_failure(res, task)
    return {
        "id": task.id, "template": task.template, "question": task.question,
        "expected": task.answer, "answer": res.answer, "correct": failure is None,
        "failure": failure, "stop_reason": res.stop_reason,
        "generated_tokens": res.generated_tokens, "latency_ms": round(res.latency_ms, 3),
        "steps": [{"tool": s.tool, "tool_input": s.tool_input, "observation": s.observation,
                   "context_tokens": s.context_tokens, "kv_cache_bytes": s.kv_cache_bytes,
                   "generated_tokens": s.generated_tokens,
                   "generation_ms": round(s.generation_ms, 3), "tool_ms": round(s.tool_ms, 4)}
                  for s in res.steps],
    }


def summarize(rows: list[dict]) -> dict:
    steps = [s for r in rows for s in r["steps"]]
    per_template = defaultdict(lambda: [0, 0])
    for r in rows:
        per_template[r["template"]][0] += r["correct"]
        per_template[r["template"]][1] += 1

    def mean(xs):
        return round(statistics.fmean(xs), 4) if xs else 0.0

    by_pos = defaultdict(list)
    for r in rows:
        for i, s in enumerate(r["steps"]):
            by_pos[i].append(s)
    return {
        "n_tasks": len(rows),
        "exact_match": round(sum(r["correct"] for r in rows) / max(1, len(rows)), 4),
        "mean_steps": mean([len(r["steps"]) for r in rows]),
        "mean_tool_calls": mean([sum(s["tool"] is not None for s in r["steps"]) for r in rows]),
        "mean_generated_tokens": mean([r["generated_tokens"] for r in rows]),
        "mean_episode_latency_ms": mean([r["latency_ms"] for r in rows]),
        "accuracy_per_template": {k: round(c / n, 4) for k, (c, n) in sorted(per_template.items())},
        "failures": dict(Counter(r["failure"] for r in rows if r["failure"]).most_common()),
        "stop_reasons": dict(Counter(r["stop_reason"] for r in rows)),
        "per_step": {
            "mean_context_tokens": mean([s["context_tokens"] for s in steps]),
            "mean_kv_cache_bytes": mean([s["kv_cache_bytes"] for s in steps]),
            "mean_generated_tokens": mean([s["generated_tokens"] for s in steps]),
            "mean_generation_ms": mean([s["generation_ms"] for s in steps]),
            "mean_tool_ms": mean([s["tool_ms"] for s in steps if s["tool"] is not None]),
        },
        "by_step_index": [
            {"step": i + 1, "n": len(ss),
             "mean_context_tokens": mean([s["context_tokens"] for s in ss]),
             "mean_kv_cache_bytes": mean([s["kv_cache_bytes"] for s in ss]),
             "mean_generation_ms": mean([s["generation_ms"] for s in ss]),
             "mean_tool_ms": mean([s["tool_ms"] for s in ss])}
            for i, ss in sorted(by_pos.items())],
    }


def print_report(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    con = Console()
    t = Table(title=f"nano-react: {summary['n_tasks']} tasks", show_header=False)
    for key in ("exact_match", "mean_steps", "mean_tool_calls", "mean_generated_tokens",
                "mean_episode_latency_ms"):
        t.add_row(key, str(summary[key]))
    for key, val in summary["per_step"].items():
        t.add_row(f"per step: {key}", str(val))
    con.print(t)
    tt = Table("template", "exact match")
    for k, v in summary["accuracy_per_template"].items():
        tt.add_row(k, f"{v:.4f}")
    con.print(tt)
    ts = Table("step", "episodes", "context tokens", "KV-cache bytes", "generation ms", "tool ms")
    for s in summary["by_step_index"]:
        ts.add_row(str(s["step"]), str(s["n"]), str(s["mean_context_tokens"]),
                   str(s["mean_kv_cache_bytes"]), str(s["mean_generation_ms"]),
                   str(s["mean_tool_ms"]))
    con.print(ts)
    con.print(f"failures: {summary['failures'] or 'none'}")
    con.print(f"stop reasons: {summary['stop_reasons']}")
