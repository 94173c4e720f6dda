"""nano-codegen's evaluation report: one row per episode (its attempts and verdicts), the
summary (pass@1, pass within the attempt bound, verification against generation time) and its
printed tables. Used by reference.evaluate through the workload registry.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict


def report_row(task, res) -> dict:
    """One nano-codegen episode as a report row."""
    return {
        "id": task.id, "template": task.template, "prompt": task.prompt,
        "expected": task.answer, "answer": res.answer, "output": res.output,
        "correct": res.solved, "passed_first": res.passed_first,
        "stop_reason": res.stop_reason, "generated_tokens": res.generated_tokens,
        "latency_ms": round(res.latency_ms, 3),
        "attempts": [{"program": a.program, "verdict": a.result.kind,
                      "context_tokens": s.context_tokens, "kv_cache_bytes": s.kv_cache_bytes,
                      "generated_tokens": s.generated_tokens,
                      "generation_ms": round(s.generation_ms, 3),
                      "verify_ms": round(a.verify_ms, 3)}
                     for a, s in zip(res.attempts, res.steps)],
    }


def summarize(rows: list[dict]) -> dict:
    def mean(xs):
        return round(statistics.fmean(xs), 4) if xs else 0.0

    n = max(1, len(rows))
    atts = [a for r in rows for a in r["attempts"]]
    by_pos = defaultdict(list)
    for r in rows:
        for i, a in enumerate(r["attempts"]):
            by_pos[i].append(a)
    per_template = defaultdict(lambda: [0, 0])
    for r in rows:
        per_template[r["template"]][0] += r["correct"]
        per_template[r["template"]][1] += 1
    growth = [b["context_tokens"] - a["context_tokens"] for r in rows
              for a, b in zip(r["attempts"], r["attempts"][1:])]
    return {
        "n_tasks": len(rows),
        "pass_at_1": round(sum(r["passed_first"] for r in rows) / n, 4),
        "pass_within_bound": round(sum(r["correct"] for r in rows) / n, 4),
        "mean_attempts": mean([len(r["attempts"]) for r in rows]),
        "mean_generated_tokens": mean([r["generated_tokens"] for r in rows]),
        "mean_tokens_per_attempt": mean([a["generated_tokens"] for a in atts]),
        "mean_context_growth_per_retry": mean(growth),
        "mean_generation_ms_per_attempt": mean([a["generation_ms"] for a in atts]),
        "mean_verify_ms_per_attempt": mean([a["verify_ms"] for a in atts]),
        "mean_episode_latency_ms": mean([r["latency_ms"] for r in rows]),
        "accuracy_per_template": {k: round(c / m, 4) for k, (c, m) in sorted(per_template.items())},
        "verdicts": dict(Counter(a["verdict"] for a in atts).most_common()),
        "stop_reasons": dict(Counter(r["stop_reason"] for r in rows)),
        "by_attempt": [
            {"attempt": i + 1, "n": len(aa), "ok": sum(a["verdict"] == "ok" for a in aa),
             "mean_context_tokens": mean([a["context_tokens"] for a in aa]),
             "mean_kv_cache_bytes": mean([a["kv_cache_bytes"] for a in aa]),
             "mean_generated_tokens": mean([a["generated_tokens"] for a in aa]),
             "mean_generation_ms": mean([a["generation_ms"] for a in aa]),
             "mean_verify_ms": mean([a["verify_ms"] for a in aa])}
            for i, aa in sorted(by_pos.items())],
    }


def print_report(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    con = Console()
    t = Table(title=f"nano-codegen: {summary['n_tasks']} tasks", show_header=False)
    for key in ("pass_at_1", "pass_within_bound", "mean_attempts", "mean_generated_tokens",
                "mean_tokens_per_attempt", "mean_context_growth_per_retry",
                "mean_generation_ms_per_attempt", "mean_verify_ms_per_attempt",
                "mean_episode_latency_ms"):
        t.add_row(key, str(summary[key]))
    con.print(t)
    tt = Table("template", "passed")
    for k, v in summary["accuracy_per_template"].items():
        tt.add_row(k, f"{v:.4f}")
    con.print(tt)
    ta = Table("attempt", "episodes", "ok", "context tokens", "KV-cache bytes",
               "generated tokens", "generation ms", "verify ms")
    for a in summary["by_attempt"]:
        ta.add_row(*(str(a[k]) for k in ("attempt", "n", "ok", "mean_context_tokens",
                                          "mean_kv_cache_bytes", "mean_generated_tokens",
                                          "mean_generation_ms", "mean_verify_ms")))
    con.print(ta)
    con.print(f"verdicts: {summary['verdicts']}")
    con.print(f"stop reasons: {summary['stop_reasons']}")
