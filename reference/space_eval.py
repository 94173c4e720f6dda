"""Score a checkpoint on fresh generalisation sets over a benchmark's whole declared input space.

    python -m reference.space_eval nano-react --n 100 --batch 32          # every dimension
    python -m reference.space_eval nano-react --checkpoint build/x/model.pt \
        --dims capitalised,digits_8
    python -m reference.space_eval nano-codegen --n 100 --json out.json

For each dimension of reference/space.py (`whole`, capitalised words, repeated letters, long
words, long strings, long lists, counts 5-6, 8-digit numbers) the benchmark's generator draws n
tasks from the held-out side of its declared space (`<benchmark tasks>.space_tasks`) with that
dimension pinned to its hard end, over the templates that have that kind of input, and the
agent runs them closed loop (reference.evaluate.evaluate: greedy, real tools, the rules.yaml
episode bound). It prints accuracy per dimension (nano-codegen: pass within the attempt bound
and pass@1) and per template, and with --json writes every episode.

These sets are measurements for development, not frozen files: the seed (--seed) makes them
reproducible; none of their values can occur in training (tests/test_space.py), but issue 34's
acceptance sets are built independently, so aim for the space, not for these sets.

Limits: CPU decoding; nano-planner runs under its JSON Schema constraint (slow: about 1 s an
episode on 2 cores); a dimension no template has (nano-react has no lists) is skipped.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from reference.space import DIMS

# benchmark -> the module whose `space_tasks(dim, n, seed[, verifier])` builds its sets
GENERATORS = {
    "nano-react": "reference.react.tasks",
    "nano-codegen": "reference.codegen.tasks",
    "nano-planner": "reference.planner.tasks",
}


def build_tasks(benchmark: str, dim: str, n: int, seed: int | None = None) -> list:
    """The benchmark's fresh set for one dimension (nano-codegen starts a sandbox for its
    ground truth)."""
    mod = importlib.import_module(GENERATORS[benchmark])
    return mod.space_tasks(dim, n, **({} if seed is None else {"seed": seed}))


def score(rows: list[dict]) -> dict:
    """Accuracy of a dimension's rows, per template too; nano-codegen's pass@1 where known."""
    by_tpl: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_tpl[r.get("template", "?")].append(bool(r["correct"]))
    out = {"n": len(rows), "accuracy": sum(r["correct"] for r in rows) / max(1, len(rows)),
           "per_template": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_tpl.items())}}
    stops = defaultdict(int)  # how the failures ended (context_full: the episode ran out)
    for r in rows:
        if not r["correct"]:
            stops[r.get("stop_reason", "?")] += 1
    out["failures_by_stop_reason"] = dict(sorted(stops.items()))
    if rows and "passed_first" in rows[0]:  # nano-codegen: accuracy is pass within the bound
        out["pass_at_1"] = sum(bool(r["passed_first"]) for r in rows) / len(rows)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("benchmark", choices=sorted(GENERATORS), help="which benchmark")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: committed)")
    ap.add_argument("--n", type=int, default=100, help="tasks per dimension")
    ap.add_argument("--dims", default="all", help="comma-separated dimensions, or 'all': "
                    + ", ".join(DIMS))
    ap.add_argument("--seed", type=int, default=None, help="set seed (default: the generator's)")
    ap.add_argument("--batch", type=int, default=32,
                    help="episodes decoded together (0: one at a time)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None, help="write the summary and every episode")
    args = ap.parse_args(argv)
    dims = list(DIMS) if args.dims == "all" else args.dims.split(",")
    bad = [d for d in dims if d not in DIMS]
    if bad:
        ap.error(f"--dims: unknown {', '.join(bad)}; known: {', '.join(DIMS)}")
    if args.n <= 0:
        ap.error("--n must be > 0")

    import torch

    from reference.checkpoint import CheckpointError, load_model
    from reference.evaluate import evaluate
    from reference.rules import load_rules
    from reference.workloads import get_workload
    torch.set_num_threads(args.threads)
    bench = load_rules().benchmark(args.benchmark)
    workload = get_workload(args.benchmark, bench.workload)
    checkpoint = args.checkpoint or workload.default_checkpoint
    try:
        model = load_model(checkpoint)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = {"benchmark": args.benchmark, "checkpoint": str(checkpoint), "n": args.n,
              "seed": args.seed, "dims": {}}
    episodes = {}
    for dim in dims:
        t0 = time.perf_counter()
        tasks = build_tasks(args.benchmark, dim, args.n, args.seed)
        if not tasks:
            print(f"{dim:18s} skipped: no {args.benchmark} template has this input")
            continue
        _, rows = evaluate(workload, model, tasks, bench.max_steps, batch=args.batch)
        for r, t in zip(rows, tasks):
            r.setdefault("template", t.template)
        s = score(rows)
        report["dims"][dim] = s
        episodes[dim] = rows
        extra = f"  pass@1 {s['pass_at_1']:.3f}" if "pass_at_1" in s else ""
        worst = sorted(s["per_template"].items(), key=lambda kv: kv[1])[:3]
        print(f"{dim:18s} {s['accuracy']:.3f} (n={s['n']}){extra}  "
              f"{time.perf_counter() - t0:.0f}s  lowest: "
              + ", ".join(f"{k} {v:.2f}" for k, v in worst)
              + f"  failures: {s['failures_by_stop_reason']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"summary": report, "episodes": episodes}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
