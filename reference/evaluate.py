"""Closed-loop evaluation of a nano agent workload on its frozen evaluation set.

    python -m reference.evaluate nano-react                # the committed checkpoint, all tasks
    python -m reference.evaluate nano-react --json out.json --limit 100
    python -m reference.evaluate nano-codegen               # pass@1, pass within the bound
    python -m reference.evaluate nano-react --split generalisation --batch 32   # unseen words

Runs every task through the agent loop (greedy decoding, real tools, observations injected)
and prints exact-match accuracy, mean steps and generated tokens, accuracy per template,
failure categories, and per-step systems metrics (context tokens, KV-cache bytes, generation
ms, tool ms). With --json the full report, including every answer, is written to a file
(`-` for stdout). Answers are compared exactly with the task's ground truth.

nano-codegen runs the generate -> verify -> retry loop (real sandbox) and prints pass@1, pass
within the attempt bound, mean attempts, tokens per attempt, context growth per retry,
verdicts per attempt, and verification ms against generation ms.

`--split generalisation` runs the frozen generalisation split instead (held-out words, wider
numbers); `--batch N` decodes N episodes together with the batched engine.

Limits: by default one episode at a time (the reference measurement, not the fast path).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from reference.model import GPT, GPTConfig
from reference.react.agent import run_env, run_episode
from reference.react.tasks import file_sha256

CHECKPOINTS = {name: Path(__file__).parent / "checkpoints" / name / "model.pt"
               for name in ("nano-react", "nano-codegen")}


class CheckpointError(Exception):
    """A checkpoint file that is missing, corrupt or not for this workload."""


def load_model(path: Path, device: str = "cpu") -> GPT:
    if not Path(path).is_file():
        raise CheckpointError(f"no checkpoint at {path} (train one with `make train`)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        model = GPT(GPTConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except Exception as err:  # any unpickling/shape problem is the file's fault, not ours
        raise CheckpointError(f"cannot load checkpoint {path}: {err}") from None
    return model.to(device).eval()


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


def _batched(model: GPT, items: list, batch: int, make_env=None) -> list:
    """Every episode through the batched engine (continuous batching, KV cache per row)."""
    from reference.engine import Engine
    return Engine(model, max_batch=batch, make_env=make_env).run_all(items)


def evaluate(model: GPT, tasks, progress: bool = False, batch: int = 0) -> tuple[dict, list[dict]]:
    rows = []
    t0 = time.perf_counter()
    done = _batched(model, [t.question for t in tasks], batch) if batch else None
    for i, task in enumerate(tasks):
        res = done[i] if done else run_episode(model, task.question)
        failure = classify_failure(res, task)
        rows.append({
            "id": task.id, "template": task.template, "question": task.question,
            "expected": task.answer, "answer": res.answer, "correct": failure is None,
            "failure": failure, "stop_reason": res.stop_reason,
            "generated_tokens": res.generated_tokens, "latency_ms": round(res.latency_ms, 3),
            "steps": [{"tool": s.tool, "tool_input": s.tool_input, "observation": s.observation,
                       "context_tokens": s.context_tokens, "kv_cache_bytes": s.kv_cache_bytes,
                       "generated_tokens": s.generated_tokens,
                       "generation_ms": round(s.generation_ms, 3), "tool_ms": round(s.tool_ms, 4)}
                      for s in res.steps],
        })
        if progress and ((i + 1) % 100 == 0 or i + 1 == len(tasks)):
            acc = sum(r["correct"] for r in rows) / len(rows)
            print(f"  {i + 1}/{len(tasks)} episodes, exact match so far {acc:.4f}, "
                  f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return summarize(rows), rows


def codegen_row(task, res) -> dict:
    """One nano-codegen episode as a report row."""
    return {
        "id": task.id, "template": task.template, "prompt": task.prompt,
        "expected": task.answer, "program": res.answer, "output": res.output,
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


def summarize_codegen(rows: list[dict]) -> dict:
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


def evaluate_codegen(model: GPT, tasks, progress: bool = False,
                     workers: int = 2, batch: int = 0) -> tuple[dict, list[dict]]:
    from reference.codegen.agent import CodegenEnv
    from reference.codegen.sandbox import Verifier
    rows = []
    t0 = time.perf_counter()
    with Verifier(workers=workers) as verifier:
        done = _batched(model, list(tasks), batch,
                        lambda t: CodegenEnv(t, verifier)) if batch else None
        for i, task in enumerate(tasks):
            rows.append(codegen_row(task, done[i] if done else
                                    run_env(model, CodegenEnv(task, verifier))))
            if progress and ((i + 1) % 100 == 0 or i + 1 == len(tasks)):
                acc = sum(r["correct"] for r in rows) / len(rows)
                print(f"  {i + 1}/{len(tasks)} episodes, passed so far {acc:.4f}, "
                      f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return summarize_codegen(rows), rows


def print_codegen_report(summary: dict) -> None:
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
                   str(s["mean_kv_cache_bytes"]), str(s["mean_generation_ms"]), str(s["mean_tool_ms"]))
    con.print(ts)
    con.print(f"failures: {summary['failures'] or 'none'}")
    con.print(f"stop reasons: {summary['stop_reasons']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Closed-loop evaluation on the frozen set.")
    ap.add_argument("workload", choices=sorted(CHECKPOINTS), help="which workload")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: committed)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N tasks")
    ap.add_argument("--split", choices=["frozen", "generalisation"], default="frozen",
                    help="the frozen evaluation set, or its generalisation split (unseen "
                         "words, wider numbers; rules.yaml names both)")
    ap.add_argument("--batch", type=int, default=0,
                    help="decode N episodes together with the batched engine (0: one at a "
                         "time); greedy answers are the same up to float rounding ties")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the full report ('-': stdout)")
    ap.add_argument("--reference-results", default=None, metavar="PATH",
                    help="also write each task's answer and verdict as JSON lines (how the "
                         "reference's per-sample results in rules.yaml are made)")
    args = ap.parse_args(argv)
    if args.limit < 0:
        ap.error("--limit must be >= 0")
    if args.batch < 0:
        ap.error("--batch must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = load_model(args.checkpoint or CHECKPOINTS[args.workload], device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    codegen = args.workload == "nano-codegen"
    gen = args.split == "generalisation"
    if codegen:
        from reference.codegen import tasks as task_module
    else:
        from reference.react import tasks as task_module
    eval_path = task_module.GEN_PATH if gen else task_module.EVAL_PATH
    tasks = task_module.load_eval_set(eval_path)
    if args.limit:
        tasks = tasks[: args.limit]
    summary, rows = (evaluate_codegen if codegen else evaluate)(model, tasks, progress=True,
                                                                batch=args.batch)
    summary = {"workload": args.workload, "split": args.split,
               "eval_set_sha256": file_sha256(eval_path),
               "checkpoint": str(args.checkpoint or CHECKPOINTS[args.workload]),
               "device": device, **summary}
    if args.reference_results:
        with open(args.reference_results, "w") as f:
            for i, r in enumerate(rows):
                f.write(json.dumps({"answer": r["program"] if codegen else r["answer"],
                                    "correct": r["correct"], "id": r["id"], "qsl_idx": i},
                                   sort_keys=True) + "\n")
    if args.json == "-":
        print(json.dumps({"summary": summary, "episodes": rows}, indent=1))
    else:
        (print_codegen_report if codegen else print_report)(summary)
        if args.json:
            Path(args.json).write_text(json.dumps({"summary": summary, "episodes": rows}, indent=1))
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
