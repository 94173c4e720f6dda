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

nano-planner decodes every planner step under its JSON Schema and prints its three metrics
(pass rate, bad-task rate, completion rate), pass rate per template and the mask time per
token.

`--split generalisation` runs the frozen generalisation split instead (held-out words, wider
numbers); `--batch N` decodes N episodes together with the batched engine.

The workload registry (reference/workloads.py) gives the environment, the report row, the
summary and the printed tables; rules.yaml gives the episode bound and the split's file.

Limits: by default one episode at a time (the reference measurement, not the fast path).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from reference.checkpoint import CheckpointError, load_model
from reference.episode import run_env
from reference.hashing import file_sha256
from reference.rules import RulesError, load_rules
from reference.workloads import get_workload

# per-sample figures behind a benchmark's further quality bounds (rules.yaml `quality.bounds`)
SECONDARY_KEYS = ("completed", "tool_steps", "bad_steps")


def evaluate(workload, model, tasks, max_steps: int, progress: bool = False,
             batch: int = 0, verifier_workers: int = 2,
             episode_options: dict | None = None) -> tuple[dict, list[dict]]:
    """Every task through the agent loop (greedy): (the workload's summary, one row per task).
    `workload`: a name or a Workload; `batch` > 0 decodes that many episodes together with the
    batched engine (continuous batching, KV cache per row). `episode_options`: the workload's
    own episode options (nano-planner: `executor`)."""
    w = get_workload(workload) if isinstance(workload, str) else workload
    rows = []
    t0 = time.perf_counter()
    with w.episodes(max_steps, verifier_workers, **(episode_options or {})) as make_env:
        if batch:
            from reference.engine import Engine
            done = Engine(model, make_env, max_batch=batch).run_all(list(tasks))
        for i, task in enumerate(tasks):
            rows.append(w.report_row(task, done[i] if batch else run_env(model, make_env(task))))
            if progress and ((i + 1) % 100 == 0 or i + 1 == len(tasks)):
                acc = sum(r["correct"] for r in rows) / len(rows)
                print(f"  {i + 1}/{len(tasks)} episodes, correct so far {acc:.4f}, "
                      f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return w.summarize(rows), rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Closed-loop evaluation on the frozen set.")
    ap.add_argument("workload", metavar="benchmark",
                    help="which benchmark of rules.yaml (nano-react, nano-codegen, nano-planner)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: committed)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N tasks")
    ap.add_argument("--split", default="frozen",
                    help="'frozen' (the evaluation set) or a further split rules.yaml names "
                         "(generalisation: unseen words, wider numbers)")
    ap.add_argument("--batch", type=int, default=0,
                    help="decode N episodes together with the batched engine (0: one at a "
                         "time); greedy answers are the same up to float rounding ties")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--rules", type=Path, default=None, help="rules.yaml (default: the suite's)")
    ap.add_argument("--executor", default=None,
                    help="nano-planner: who writes each step's exact call, 'translator' "
                         "(deterministic, the default) or 'caller' (the function-caller model)")
    ap.add_argument("--json", default=None, metavar="PATH",
                    help="write the full report ('-': stdout)")
    ap.add_argument("--reference-results", default=None, metavar="PATH",
                    help="also write each task's answer and verdict as JSON lines (how the "
                         "reference's per-sample results in rules.yaml are made)")
    args = ap.parse_args(argv)
    if args.limit < 0:
        ap.error("--limit must be >= 0")
    if args.batch < 0:
        ap.error("--batch must be >= 0")
    try:
        rules = load_rules(args.rules) if args.rules else load_rules()
        bench = rules.benchmark(args.workload)
    except RulesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.split != "frozen" and args.split not in bench.splits:
        ap.error(f"--split {args.split!r}: {args.workload} has 'frozen'"
                 + "".join(f", {s!r}" for s in bench.splits))
    eval_path = bench.eval_set if args.split == "frozen" else bench.splits[args.split].eval_set
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    workload = get_workload(args.workload, bench.workload)
    options = {}
    if args.executor is not None:
        executors = getattr(workload, "executors", ())
        if args.executor not in executors:
            ap.error(f"--executor {args.executor!r}: " + (
                f"{args.workload} has {', '.join(executors)}" if executors
                else f"{args.workload} has no executor choice"))
        options["executor"] = args.executor
    checkpoint = args.checkpoint or workload.default_checkpoint
    try:
        model = load_model(checkpoint, device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    tasks = workload.load_tasks(eval_path)
    if args.limit:
        tasks = tasks[: args.limit]
    summary, rows = evaluate(workload, model, tasks, bench.max_steps, progress=True,
                             batch=args.batch, episode_options=options)
    summary = {"workload": args.workload, "split": args.split,
               "eval_set_sha256": file_sha256(eval_path), "checkpoint": str(checkpoint),
               "device": device, **options, **summary}
    if args.reference_results:
        with open(args.reference_results, "w") as f:
            for i, r in enumerate(rows):
                extra = {k: r[k] for k in SECONDARY_KEYS if k in r}  # nano-planner's metrics
                f.write(json.dumps({"answer": r["answer"], "correct": r["correct"], "id": r["id"],
                                    "qsl_idx": i, **extra}, sort_keys=True) + "\n")
    if args.json == "-":
        print(json.dumps({"summary": summary, "episodes": rows}, indent=1))
    else:
        workload.print_report(summary)
        if args.json:
            Path(args.json).write_text(json.dumps({"summary": summary, "episodes": rows}, indent=1))
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
