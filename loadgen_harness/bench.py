"""Offline episodes/s of the naive baseline, the engine called directly, and through LoadGen.

    python -m loadgen_harness.bench                 # make bench
    python -m loadgen_harness.bench --tasks 1000 --naive-tasks 50 --agreement

All three run in one invocation on the same machine, so their ratios are comparable even on a
shared, noisy machine. The engine and the LoadGen SUT use the same worker setup (workers x
threads from systems/<system>.yaml); LoadGen runs in its child process as in a submission,
and its rate is LoadGen's own `result_samples_per_second`. With --agreement the engine's
answers are compared with the naive baseline's on the naive subset (greedy decoding: they
should be identical).

Limits: the naive baseline is slow (the whole context per token), so it runs a subset.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from loadgen_harness.logs import read_detail
from loadgen_harness.rules import load_rules
from loadgen_harness.runner import run_test
from loadgen_harness.sut import WorkerPool
from loadgen_harness.system import load_system
from reference.evaluate import load_model
from reference.react.agent import run_episode
from reference.react.tasks import load_eval_set


def naive_rate(model, tasks) -> tuple[float, list]:
    t0 = time.perf_counter()
    results = [run_episode(model, t.question, naive=True) for t in tasks]
    return len(tasks) / (time.perf_counter() - t0), results


def engine_rate(model, tasks, workers: int, max_batch: int) -> tuple[float, list]:
    results = [None] * len(tasks)
    lock = threading.Lock()

    def on_done(key, idx, result):
        with lock:
            results[idx] = result

    pool = WorkerPool(model, tasks, on_done, workers, max_batch)
    t0 = time.perf_counter()
    for i in range(len(tasks)):
        pool.submit(i, i)
    pool.start()
    pool.stop()
    return len(tasks) / (time.perf_counter() - t0), results


def loadgen_rate(rules, bench, checkpoint, n: int, expected_qps: float, tuning: dict,
                 max_batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"benchmark": bench.name, "scenario": "Offline", "mode": "PerformanceOnly",
                "out_dir": str(Path(tmp) / "run"), "checkpoint": str(checkpoint),
                "eval_set": str(bench.eval_set), "workers": tuning.get("workers", 1),
                "threads": tuning.get("threads", 1), "device": tuning["device"],
                "max_batch": max_batch,
                "settings": {**rules.official_seeds, "min_duration_ms": 0,
                             "min_query_count": n,
                             "offline_expected_qps": expected_qps}}
        run_test(spec, timeout_s=600)
        d = read_detail(Path(spec["out_dir"]) / "mlperf_log_detail.txt")
        return float(d["result_samples_per_second"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Naive vs engine vs LoadGen, Offline episodes/s.")
    ap.add_argument("--benchmark", default="nano-react", help="benchmark name")
    ap.add_argument("--system", default="cpu", help="systems/<name>.yaml for workers/threads")
    ap.add_argument("--tasks", type=int, default=1000, help="episodes for engine and LoadGen")
    ap.add_argument("--naive-tasks", type=int, default=30, help="episodes for the naive baseline")
    ap.add_argument("--agreement", action="store_true",
                    help="also compare engine answers with naive answers on the naive subset")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the reference one")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)
    rules = load_rules()
    bench = rules.benchmark(args.benchmark)
    doc = load_system(args.system)
    tuning = doc["tuning"]
    max_batch = tuning["benchmarks"][args.benchmark]["Offline"].get("max_batch", 64)
    workers, threads = tuning.get("workers", 1), tuning.get("threads", 1)
    torch.set_num_threads(threads)
    checkpoint = args.checkpoint or bench.reference_checkpoint
    model = load_model(checkpoint, tuning["device"])
    tasks = load_eval_set(bench.eval_set)[: args.tasks]
    print(f"{args.benchmark}: {len(tasks)} episodes, {workers} workers x {threads} threads, "
          f"max_batch {max_batch}", flush=True)

    # The naive baseline, one episode at a time, uses every core it is given.
    torch.set_num_threads(workers * threads)
    naive, naive_results = naive_rate(model, tasks[: args.naive_tasks])
    print(f"naive baseline     {naive:8.2f} episodes/s  ({args.naive_tasks} episodes)", flush=True)
    torch.set_num_threads(threads)
    engine, engine_results = engine_rate(model, tasks, workers, max_batch)
    print(f"engine, direct     {engine:8.2f} episodes/s", flush=True)
    through = loadgen_rate(rules, bench, checkpoint, len(tasks), engine,
                           tuning, max_batch)
    print(f"engine, LoadGen    {through:8.2f} episodes/s", flush=True)
    figures = {"tasks": len(tasks), "naive_tasks": args.naive_tasks, "workers": workers,
               "threads": threads, "max_batch": max_batch,
               "naive_eps": round(naive, 3), "engine_eps": round(engine, 3),
               "loadgen_eps": round(through, 3),
               "engine_over_naive": round(engine / naive, 2),
               "loadgen_overhead_pct": round(100 * (1 - through / engine), 2)}
    print(f"engine / naive     {figures['engine_over_naive']:8.2f}x")
    print(f"LoadGen overhead   {figures['loadgen_overhead_pct']:8.2f}% against the engine called directly")
    if args.agreement:
        same = sum(a.answer == b.answer for a, b in zip(naive_results, engine_results))
        figures["agreement_naive_engine"] = round(same / len(naive_results), 4)
        print(f"answers identical  {same}/{len(naive_results)} (engine vs naive)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
