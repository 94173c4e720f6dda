"""Offline episodes/s of the naive baseline, the engine called directly, and through LoadGen.

    python -m loadgen_harness.bench                 # make bench
    python -m loadgen_harness.bench --tasks 1000 --naive-tasks 50 --agreement
    python -m loadgen_harness.bench --benchmark nano-codegen --server-qps 10,20
    python -m loadgen_harness.bench --system cpu-ray --tasks 400 --json OUT   # Ray replicas
    build/peers-venv/bin/python -m loadgen_harness.bench --peers   # make bench-peers

All three run in one invocation on the same machine, so their ratios are comparable even on a
shared, noisy machine. The engine and the LoadGen SUT use the same engine setup (workers x
threads and tuning.draft from systems/<system>.yaml, or --draft); LoadGen runs in its child
process as in a submission, on exactly the direct run's episodes (the first --tasks tasks, each
issued once), and its rate is LoadGen's own `result_samples_per_second`; the two run --rounds
times each in ABBA order and their means are compared (the machine's speed drifts between runs;
ABBA cancels a steady drift); each round's own overhead is printed too, with the mean, stdev
and range of those.
Workers are started and warmed up (loadgen_harness.sut.WARM_STEPS) before either is timed.
The roofline and breakdown use the fastest direct run. The roofline (loadgen_harness/
roofline.py) measures the machine's matmul rate and memory bandwidth in the same run, counts
each episode's FLOPs and bytes from the model's shapes and the engine's step records, and
prints first the engine's fraction of the bound of the algorithm it runs (drafts included:
`roofline.with_drafts.engine_fraction_of_bound` in --json), then the one-token bound as
context only (plain decode, which the engine does not run), and where the engine's time
goes (decode forwards, attention inside them, prefills, the environment and its tools, Python
bookkeeping). With --agreement the engine's
answers are compared with the naive baseline's on the naive subset (greedy decoding: they
should be identical). With --server-qps, Server runs at those rates with an unbounded latency
report the p99 episode latency (how rules.md section 8 calibrates each Server bound). For a
benchmark decoded under a schema (nano-planner) the engine also runs the first
--constraint-tasks episodes with and without the constraint and prints both times per token
and the schema violations of each.

A Ray system (tuning.backend ray, loadgen_harness.ray_pool) runs the engine through its
replicas, directly and through LoadGen, and today's worker pool with one worker per replica on
the same episodes, in the same ABBA rounds: the Ray overhead against the pool, and whether
the answers are identical.

With --peers (in the venv of `make bench-peers`, which has transformers) the first
--peer-tasks episodes also run through Hugging Face transformers on the same weights
(loadgen_harness/peers.py: a GPT-NeoX export, the KV cache kept across tool calls): episodes/s
and answer agreement with the engine per peer, and the engine's rate over the best peer's.

Limits: the naive baseline is slow (the whole context per token), so it runs a subset.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from loadgen_harness.logs import read_detail
from loadgen_harness.roofline import episode_work, machine_limits, report
from loadgen_harness.runner import run_test
from loadgen_harness.spec import RunSpec, SpecError, Tuning, backend_fields
from loadgen_harness.sut import EpisodeFactory, WorkerPool
from loadgen_harness.system import DeclarationError, load_system
from reference import attention
from reference.checkpoint import CheckpointError, load_model
from reference.rules import RulesError, load_rules
from reference.grading import load_tasks
from reference.episode import run_env


def naive_rate(model, tasks, make_env) -> tuple[float, list]:
    t0 = time.perf_counter()
    results = [run_env(model, make_env(t), naive=True) for t in tasks]
    return len(tasks) / (time.perf_counter() - t0), results


def engine_rate(model, tasks, workers: int, max_batch: int, make_env,
                breakdown: dict | None = None, draft: int = 0) -> tuple[float, list]:
    results = [None] * len(tasks)
    lock = threading.Lock()

    def on_done(key, idx, result):
        with lock:
            results[idx] = result

    pool = WorkerPool(model, tasks, on_done, make_env, workers, max_batch, draft)
    pool.start()  # warmed-up workers waiting for work, as the LoadGen SUT's are when it issues
    t0 = time.perf_counter()
    for i in range(len(tasks)):
        pool.submit(i, i)
    pool.stop()
    wall = time.perf_counter() - t0
    if breakdown is not None:
        breakdown.update(time_breakdown(pool.engines, results, wall * workers))
    return len(tasks) / wall, results


def ray_engine_rate(spec: RunSpec, n: int, breakdown: dict | None = None) -> tuple[float, list]:
    """The engine through Ray replicas (tuning.backend ray) without LoadGen: the first n tasks
    submitted at once, as engine_rate does; the replicas' start (model loads) is not timed."""
    from loadgen_harness import ray_pool  # Ray is an optional extra
    results = [None] * n

    def on_done(key, idx, result, served_by):
        results[idx] = result

    pool = ray_pool.RayPool(spec, on_done)
    t0 = time.perf_counter()
    for i in range(n):
        pool.submit(i, i)
    pool.start()
    pool.stop()
    wall = time.perf_counter() - t0
    if pool.errors:
        raise pool.errors[0]
    if breakdown is not None:
        breakdown.update(time_breakdown(pool.engines, results, wall * len(pool.engines)))
    return n / wall, results


def time_breakdown(engines, results, worker_s: float) -> dict:
    """Shares of the workers' wall time: decode forwards, prefills, the environment (of which
    tool/verifier time), and the rest (Python bookkeeping: sampling, slots, stopping rules)."""
    tot = {k: sum(e.stats[k] for e in engines) for k in engines[0].stats} if engines else {}
    tool_s = sum(s.tool_ms for r in results if r is not None for s in r.steps) / 1e3
    parts = {"decode_forward": tot.get("decode_forward_s", 0.0),
             "prefill": tot.get("prefill_s", 0.0),
             "environment_excl_tools": max(0.0, tot.get("env_s", 0.0) - tool_s),
             "tools": tool_s}
    parts["python_bookkeeping"] = max(0.0, worker_s - sum(parts.values()))
    out = {f"{k}_pct": round(100 * v / worker_s, 1) for k, v in parts.items()}
    steps = tot.get("decode_steps", 0)
    out["mean_rows_per_decode_step"] = round(tot.get("rows_decoded", 0) / steps, 1) if steps else 0
    out["decode_step_ms"] = round(1e3 * tot.get("decode_forward_s", 0.0) / steps, 3) if steps else 0
    rows = tot.get("rows_decoded", 0)
    out["tokens_per_row_and_forward"] = (round(tot.get("tokens_decoded", 0) / rows, 3)
                                         if rows else 1.0)
    out["drafts_kept_share"] = (round(tot["accepted"] / tot["drafted"], 3)
                                if tot.get("drafted") else 0.0)
    return out


@contextlib.contextmanager
def _quiet_fds():
    """Silence file descriptors 1 and 2 (the profiler's C++ side prints `USDT: ...` lines
    there, past Python's sys.stdout); Python-level output is flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


class _Stages:
    """What bench runs now, and for how long (a rich status line on a terminal; plain lines
    on stderr otherwise, so logs say where time went)."""

    def __init__(self):
        from rich.console import Console
        self.console = Console(stderr=True)
        self.status = None

    def __call__(self, what: str) -> None:
        if self.console.is_terminal:
            if self.status is None:
                self.status = self.console.status(what)
                self.status.start()
            self.status.update(f"{what} ...")
        else:
            print(f"[bench] {what} ...", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def attention_share(model, tasks, max_batch: int, make_env, draft: int = 0) -> float:
    """Fraction of model-forward time spent in attention (the ragged kernel's calls, or SDPA
    where the model falls back to it), from a profiled engine run."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from reference.engine import Engine
    forward, kernel_call = model.forward, attention.Kernel.__call__

    def timed_forward(*a, **k):
        with record_function("model_forward"):
            return forward(*a, **k)

    def timed_kernel(self, *a, **k):  # a ctypes call: the profiler sees no op of its own
        with record_function("ragged_attention"):
            return kernel_call(self, *a, **k)

    model.forward, attention.Kernel.__call__ = timed_forward, timed_kernel
    try:
        with _quiet_fds(), profile(activities=[ProfilerActivity.CPU]) as prof:
            Engine(model, make_env, max_batch=max_batch, draft=draft).run_all(tasks)
    finally:
        del model.forward
        attention.Kernel.__call__ = kernel_call
    times = {e.key: e.cpu_time_total for e in prof.key_averages()}
    fwd = times.get("model_forward", 0.0)
    attn = times.get("aten::scaled_dot_product_attention", 0.0) + times.get("ragged_attention", 0.0)
    return attn / fwd if fwd else 0.0


def constraint_cost(model, tasks, max_batch: int, make_env, rounds: int = 2) -> dict | None:
    """For a benchmark decoded under a schema (nano-planner): the engine's wall time per
    generated token with the constraint and without it (the same tasks, the same engine, the
    rows' bytes left free; runs alternated `rounds` times, the fastest of each kept), the
    constraint's own time (masks and matcher) per token, and the schema violations of each run
    (with the constraint there can be none). Both run without drafts (drafts differ with and
    without the constraint), so the difference is the constraint's alone. None for a benchmark
    without a constraint, or with no tasks to run."""
    from reference.engine import Engine
    if not tasks or getattr(make_env(tasks[0]), "constraint", None) is None:
        return None
    from reference.planner.schema import parse_step

    def free(item):
        env = make_env(item)
        env.constraint = None
        return env

    best: dict[str, dict] = {}
    for _ in range(rounds):
        for name, factory in (("unconstrained", free), ("constrained", make_env)):
            engine = Engine(model, factory, max_batch=max_batch, draft=0)  # free rows would draft
            t0 = time.perf_counter()
            results = engine.run_all(tasks)
            wall = time.perf_counter() - t0
            tokens = sum(r.generated_tokens for r in results) or 1
            steps = [s for r in results for s in r.steps]
            row = {"us_per_token": round(1e6 * wall / tokens, 2), "tokens": tokens,
                   "mask_us_per_token": round(1e6 * engine.stats["mask_s"] / tokens, 2),
                   "steps": len(steps),
                   "schema_violations": sum(parse_step(s.text)[0] is None for s in steps)}
            if name not in best or row["us_per_token"] < best[name]["us_per_token"]:
                best[name] = row
    c, u = best["constrained"], best["unconstrained"]
    return {**best, "overhead_pct": round(100 * (c["us_per_token"] / u["us_per_token"] - 1), 1),
            "tasks": len(tasks)}


def executor_cost(model, tasks, max_batch: int, make_env) -> dict | None:
    """For a benchmark with a choice of executor (nano-planner): the same episodes through the
    engine with the deterministic translator and with the function-caller model writing each
    step's call: episodes/s of each, the executor's mean time per tool step, and how many
    episodes end with the same answer. None for a benchmark without that choice, or with no
    tasks to run."""
    from reference.engine import Engine
    if not tasks or not hasattr(make_env(tasks[0]), "caller"):
        return None
    from reference.planner.caller import load_caller
    caller = load_caller()

    def with_caller(item):
        env = make_env(item)
        env.caller = caller
        return env

    out, answers = {}, {}
    for name, factory in (("translator", make_env), ("caller", with_caller)):
        t0 = time.perf_counter()
        results = Engine(model, factory, max_batch=max_batch).run_all(tasks)
        wall = time.perf_counter() - t0
        tool_steps = [s for r in results for s in r.steps if s.tool is not None]
        out[name] = {"eps": round(len(tasks) / wall, 3),
                     "executor_ms_per_step": round(
                         sum(s.executor_ms for s in tool_steps) / max(1, len(tool_steps)), 3),
                     "tool_steps": len(tool_steps)}
        answers[name] = [r.answer for r in results]
    out["same_answers"] = sum(a == b for a, b in zip(answers["translator"], answers["caller"]))
    out["tasks"] = len(tasks)
    return out


def _performance_run(rules, bench, checkpoint, scenario: str, tuning: dict, max_batch: int,
                     settings: dict, timeout_s: float,
                     performance_sample_count: int | None = None) -> dict:
    """One PerformanceOnly LoadGen run in its child process; its detail log as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(bench.name, scenario, "PerformanceOnly", str(Path(tmp) / "run"),
                       str(checkpoint), str(bench.eval_set), {**rules.official_seeds, **settings},
                       device=tuning["device"], workers=tuning.get("workers", 1),
                       threads=tuning.get("threads", 1), max_batch=max_batch,
                       draft=int(tuning.get("draft", 0)),
                       performance_sample_count=performance_sample_count,
                       **backend_fields(tuning))
        run_test(spec, timeout_s=timeout_s)
        return read_detail(Path(spec.out_dir) / "mlperf_log_detail.txt")


def loadgen_rate(rules, bench, checkpoint, n: int, expected_qps: float, tuning: dict,
                 max_batch: int) -> float:
    """The Offline rate through LoadGen on exactly the direct run's episodes: the first n
    tasks, each issued once (a permutation, not draws with replacement from the whole set,
    whose mix of episode lengths differs)."""
    d = _performance_run(rules, bench, checkpoint, "Offline", tuning, max_batch,
                         {"min_duration_ms": 0, "min_query_count": n,
                          "offline_expected_qps": expected_qps,
                          "performance_sample_count_override": n,
                          "sample_concatenate_permutation": True}, timeout_s=600,
                         performance_sample_count=n)
    issued = (d.get("effective_performance_sample_count"), d.get("generated_samples_per_query"))
    if issued != (n, n):  # the comparison with the direct run would not be like for like
        raise RuntimeError(f"LoadGen issued {issued[1]} samples of {issued[0]}, "
                           f"expected {n} of {n}")
    return float(d["result_samples_per_second"])


def server_p99_ms(rules, bench, checkpoint, qps: float, duration_s: float, tuning: dict,
                  max_batch: int) -> dict:
    """A Server performance run at `qps` with an unbounded latency: its p99 and mean (ms)."""
    d = _performance_run(rules, bench, checkpoint, "Server", tuning, max_batch,
                         {"min_duration_ms": int(duration_s * 1000), "min_query_count": 1,
                          "server_target_qps": qps, "server_target_latency_ns": 600 * 10**9},
                         timeout_s=duration_s * 4 + 300)
    return {"qps": qps, "p99_ms": round(d["result_99.00_percentile_latency_ns"] / 1e6, 1),
            "mean_ms": round(d["result_mean_latency_ns"] / 1e6, 1),
            "scheduled_qps": round(d["result_scheduled_samples_per_sec"], 2)}


def _print_roofline(roof: dict, br: dict) -> None:
    """The headline first: the engine against the bound of the algorithm it runs (drafts
    included: several tokens per row and forward, weights and cache read once for all of
    them); the one-token bound (plain autoregressive decode) follows as context only, since
    the engine does not run that algorithm."""
    m, d, w = roof["machine"], roof["with_drafts"], roof["with_drafts"]["work_per_episode"]
    print(f"engine / bound     {100 * d['engine_fraction_of_bound']:8.2f}%  of the bound of the "
          f"algorithm it runs: {d['bound_eps']:.1f} episodes/s ({d['limited_by']}-bound: compute "
          f"{d['compute_bound_eps']:.0f}, memory {d['memory_bound_eps']:.0f}), "
          f"{br['tokens_per_row_and_forward']:.2f} tokens per row and forward "
          f"({100 * br['drafts_kept_share']:.1f}% of drafted tokens kept)")
    print(f"machine            {m['matmul_gflops']:8.1f} GFLOP/s fp32 matmul, "
          f"{m['copy_gbps']:.1f} GB/s copy ({m['threads']} threads, measured now)")
    print(f"work per episode   {w['gflop'] * 1e3:8.2f} MFLOP, {w['gbytes'] * 1e3:.2f} MB "
          f"({w['tokens_decoded']:.0f} decoded + {w['tokens_prefilled']:.0f} prefilled tokens, "
          f"batch {w['batch']})")
    print(f"one-token bound    {roof['bound_eps']:8.1f} episodes/s ({roof['limited_by']}-bound), "
          f"engine / it {100 * roof['engine_fraction_of_bound']:.2f}%: context only, the bound "
          f"of plain decode (one token per row and forward), which the engine does not run")
    print(f"engine time        decode forward {br['decode_forward_pct']}% (attention "
          f"{br['attention_pct_of_forward']}% of forward), prefill {br['prefill_pct']}%, "
          f"environment {br['environment_excl_tools_pct']}% + tools {br['tools_pct']}%, "
          f"Python bookkeeping {br['python_bookkeeping_pct']}%; "
          f"{br['mean_rows_per_decode_step']} rows per decode step, "
          f"{br['decode_step_ms']} ms each", flush=True)


def _run_peers(model, tasks, make_env, engine_results, engine_eps: float, cores: int,
               stage) -> dict:
    """The same episodes through each peer on the same weights (greedy, the same tools), one
    episode at a time on every core: episodes/s, and the share of answers equal to the
    engine's on those episodes."""
    from loadgen_harness.peers import hf_episodes, to_gpt_neox
    torch.set_num_threads(cores)
    peers = {}
    stage(f"peer: Hugging Face transformers (GPT-NeoX export), {len(tasks)} episodes")
    eps, results = hf_episodes(to_gpt_neox(model), model.config, tasks, make_env)
    same = sum(a.answer == b.answer for a, b in zip(results, engine_results))
    peers["hf-transformers"] = {"episodes_per_s": round(eps, 3),
                                "agreement": round(same / len(tasks), 4), "tasks": len(tasks)}
    print(f"peer HF transformers {eps:6.2f} episodes/s ({len(tasks)} episodes, KV cache kept "
          f"across tool calls, {cores} threads); answers equal to the engine's {same}/"
          f"{len(tasks)}", flush=True)
    best = max(p["episodes_per_s"] for p in peers.values())
    print(f"engine / best peer {engine_eps / best:8.2f}x", flush=True)
    return {"peers": peers, "engine_over_best_peer": round(engine_eps / best, 2)}


def main(argv=None) -> int:
    stage = _Stages()
    try:
        return _main(argv, stage)
    except KeyboardInterrupt:
        stage.close()
        print("interrupted: bench stopped, no figures written", file=sys.stderr)
        return 130
    finally:
        stage.close()


def _main(argv, stage) -> int:
    ap = argparse.ArgumentParser(description="Naive vs engine vs LoadGen, Offline episodes/s.")
    ap.add_argument("--benchmark", default="nano-react", help="benchmark name")
    ap.add_argument("--system", default="cpu", help="systems/<name>.yaml for workers/threads")
    ap.add_argument("--tasks", type=int, default=1000, help="episodes for engine and LoadGen")
    ap.add_argument("--naive-tasks", type=int, default=30, help="episodes for the naive baseline")
    ap.add_argument("--draft", type=int, default=None, metavar="N",
                    help="the engine, direct and through LoadGen, drafts N tokens per row and "
                         "decode step (speculative decoding, reference/engine.py); default: "
                         "the system file's tuning.draft, as in submissions")
    ap.add_argument("--rounds", type=int, default=2,
                    help="runs of the engine called directly and through LoadGen, each, in "
                         "ABBA order; their means are compared (default 2)")
    ap.add_argument("--agreement", action="store_true",
                    help="also compare engine answers with naive answers on the naive subset")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the reference one")
    ap.add_argument("--server-qps", default="", metavar="LIST",
                    help="also run Server at these comma-separated rates, latency unbounded, "
                         "and print each p99 (calibrating the Server bound)")
    ap.add_argument("--server-seconds", type=float, default=20.0, help="each Server run's length")
    ap.add_argument("--constraint-tasks", type=int, default=64,
                    help="a schema-constrained benchmark (nano-planner): episodes decoded with "
                         "and without the constraint to compare their time per token, and run "
                         "with each executor (the translator, the function-caller model)")
    ap.add_argument("--routing", choices=("least_loaded", "round_robin"), default=None,
                    help="a Ray system (tuning.backend ray): how queries are routed to replicas; "
                         "default: the system file's tuning.routing")
    ap.add_argument("--peers", action="store_true",
                    help="also run the first --peer-tasks episodes through the peers on the same "
                         "weights (Hugging Face transformers, loadgen_harness/peers.py; needs "
                         "transformers: `make bench-peers` installs it in its own venv)")
    ap.add_argument("--peer-tasks", type=int, default=50,
                    help="episodes each peer runs (default 50)")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)
    try:
        server_qps = [float(q) for q in args.server_qps.split(",") if q.strip()]
    except ValueError:
        ap.error(f"--server-qps {args.server_qps!r}: expected numbers like 5,7")
    try:  # a user mistake (benchmark, system, checkpoint) is one line, never a traceback
        rules = load_rules()
        bench = rules.benchmark(args.benchmark)
        tuning = load_system(args.system)["tuning"]
        max_batch = Tuning.of(tuning, args.benchmark, "Offline").max_batch
        if server_qps:
            Tuning.of(tuning, args.benchmark, "Server")
        checkpoint = args.checkpoint or bench.reference_checkpoint
        model = load_model(checkpoint, tuning["device"])
        attention.mode()  # a mistyped NANO_ATTENTION is one line here, not a failed run
        attention_path = "kernel" if model.ragged(model.new_cache(1)) else "sdpa"
    except (RulesError, DeclarationError, SpecError, CheckpointError,
            attention.KernelError) as e:
        ap.error(str(e))
    if args.peers:
        try:
            import transformers  # noqa: F401  (only in the peers' venv)
        except ImportError:
            ap.error("--peers needs transformers, which the test venv never has: run "
                     "`make bench-peers` (its own venv, build/peers-venv)")
    for flag, least in (("tasks", 1), ("naive_tasks", 1), ("constraint_tasks", 0),
                        ("peer_tasks", 1),
                        ("rounds", 1), ("draft", 0)):
        if getattr(args, flag) is not None and getattr(args, flag) < least:
            ap.error(f"--{flag.replace('_', '-')}: a count, {least} or more")
    if args.draft is not None:
        tuning = {**tuning, "draft": args.draft}
    if args.routing is not None:
        tuning = {**tuning, "routing": args.routing}
    draft = int(tuning.get("draft", 0))
    ray_spec = None
    if tuning.get("backend") == "ray":  # replicas take the place of worker threads
        ray_spec = RunSpec(bench.name, "Offline", "PerformanceOnly", "", str(checkpoint),
                           str(bench.eval_set), {}, device=tuning["device"],
                           threads=tuning.get("threads", 1), max_batch=max_batch, draft=draft,
                           **backend_fields(tuning))
        from loadgen_harness import ray_pool
        ray_pool.connect(ray_spec)
        tuning = {**tuning, "workers": ray_spec.replicas}
    workers, threads = tuning.get("workers", 1), tuning.get("threads", 1)
    torch.set_num_threads(threads)
    tasks = load_tasks(args.benchmark, bench.eval_set)[: args.tasks]
    make_env = EpisodeFactory(rules, args.benchmark)
    print(f"{args.benchmark}: {len(tasks)} episodes, "
          + (f"Ray {ray_spec.replicas} replicas ({ray_spec.routing}, cluster {ray_spec.cluster})"
             if ray_spec else f"{workers} workers") +
          f" x {threads} threads, max_batch {max_batch}, draft {draft}, attention "
          f"{attention_path}", flush=True)

    # The naive baseline, one episode at a time, uses every core it is given.
    torch.set_num_threads(workers * threads)
    stage(f"naive baseline, {args.naive_tasks} episodes")
    naive, naive_results = naive_rate(model, tasks[: args.naive_tasks], make_env)
    print(f"naive baseline     {naive:8.2f} episodes/s  ({args.naive_tasks} episodes)", flush=True)
    torch.set_num_threads(threads)
    # The engine called directly and through LoadGen, in ABBA order (direct first in even
    # rounds, LoadGen first in odd ones): on a shared machine whose speed drifts by tens of
    # percent within minutes, one run of each compares two moments; the means of an ABBA
    # sequence cancel a steady drift.
    # A Ray system also runs today's worker pool with as many workers as it has replicas (the
    # same episodes, in the same ABBA order): its rate, and whether the answers are identical.
    rates, runs, pool_answers = [], [], None
    kinds = ("pool", "direct", "loadgen") if ray_spec else ("direct", "loadgen")
    for r in range(args.rounds):
        row = {}
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            stage(f"engine {'called directly' if kind == 'direct' else 'through LoadGen'}, "
                  f"{len(tasks)} episodes (round {r + 1} of {args.rounds})")
            if kind == "direct":
                breakdown: dict = {}
                if ray_spec:
                    eng, results = ray_engine_rate(ray_spec, len(tasks), breakdown)
                else:
                    eng, results = engine_rate(model, tasks, workers, max_batch, make_env,
                                               breakdown, draft)
                runs.append((eng, results, breakdown))
                row["engine_eps"] = round(eng, 3)
                print(f"engine, {'Ray' if ray_spec else 'direct'}"
                      f"{'        ' if ray_spec else '     '}{eng:8.2f} episodes/s", flush=True)
            elif kind == "pool":
                pool_eps, pool_results = engine_rate(model, tasks, workers, max_batch, make_env,
                                                     None, draft)
                pool_answers = [x.answer for x in pool_results]
                row["pool_eps"] = round(pool_eps, 3)
                print(f"engine, pool       {pool_eps:8.2f} episodes/s ({workers} worker "
                      "threads, no Ray)", flush=True)
            else:
                lg_eps = loadgen_rate(rules, bench, checkpoint, len(tasks),
                                      runs[-1][0] if runs else 80.0, tuning, max_batch)
                row["loadgen_eps"] = round(lg_eps, 3)
                print(f"engine, LoadGen    {lg_eps:8.2f} episodes/s", flush=True)
        rates.append(row)
    engine = sum(r["engine_eps"] for r in rates) / len(rates)
    through = sum(r["loadgen_eps"] for r in rates) / len(rates)
    _, engine_results, breakdown = max(runs, key=lambda run: run[0])
    limits = machine_limits(workers * threads)
    done = [r for r in engine_results if r is not None]
    # the headline: the bound of the algorithm the engine runs (drafts included); the
    # one-token bound (the keys beside it) is context
    roof = {"with_drafts": report(limits, episode_work(
        model.config, done, batch=max_batch,
        tokens_per_forward=max(1.0, breakdown["tokens_per_row_and_forward"])), engine),
        **report(limits, episode_work(model.config, done, batch=max_batch), engine)}
    torch.set_num_threads(threads)
    stage("profiling the engine's attention share")
    breakdown["attention_pct_of_forward"] = round(
        100 * attention_share(model, tasks[: min(len(tasks), 2 * max_batch)], max_batch,
                              make_env, draft), 1)
    _print_roofline(roof, breakdown)
    stage("constrained decoding and executors (a schema-constrained benchmark only)")
    cost = constraint_cost(model, tasks[: args.constraint_tasks], max_batch, make_env)
    if cost:
        c, u = cost["constrained"], cost["unconstrained"]
        print(f"constrained decode {c['us_per_token']:8.1f} us/token (mask and matcher "
              f"{c['mask_us_per_token']} us), unconstrained {u['us_per_token']:.1f} us/token: "
              f"{cost['overhead_pct']:+.1f}% ({cost['tasks']} episodes each, same engine); "
              f"schema violations {c['schema_violations']}/{c['steps']} steps constrained, "
              f"{u['schema_violations']}/{u['steps']} free", flush=True)
    execs = executor_cost(model, tasks[: args.constraint_tasks], max_batch, make_env)
    if execs:
        t, c = execs["translator"], execs["caller"]
        print(f"executor           translator {t['eps']:.2f} episodes/s "
              f"({t['executor_ms_per_step']} ms per call), function caller "
              f"{c['eps']:.2f} episodes/s "
              f"({c['executor_ms_per_step']} ms per call); same answers "
              f"{execs['same_answers']}/{execs['tasks']}", flush=True)
    figures = {"tasks": len(tasks), "naive_tasks": args.naive_tasks, "workers": workers,
               "threads": threads, "max_batch": max_batch, "draft": draft,
               "attention": attention_path,
               "naive_eps": round(naive, 3), "engine_eps": round(engine, 3),
               "loadgen_eps": round(through, 3),
               "engine_over_naive": round(engine / naive, 2),
               "loadgen_overhead_pct": round(100 * (1 - through / engine), 2),
               "rounds": rates,
               "roofline": roof, "engine_time_breakdown": breakdown}
    # each round's own overhead (its direct and LoadGen runs are neighbours in time): the
    # spread says whether the mean's difference is more than the machine's drift
    per_round = [100 * (1 - r["loadgen_eps"] / r["engine_eps"]) for r in rates]
    spread = {"per_round_pct": [round(x, 2) for x in per_round],
              "mean_pct": round(statistics.fmean(per_round), 2),
              "stdev_pct": round(statistics.stdev(per_round), 2) if len(per_round) > 1 else 0.0,
              "min_pct": round(min(per_round), 2), "max_pct": round(max(per_round), 2)}
    figures["loadgen_overhead_rounds"] = spread
    if ray_spec:
        pool = sum(r["pool_eps"] for r in rates) / len(rates)
        same = sum(a == x.answer for a, x in zip(pool_answers, engine_results))
        figures["ray"] = {"replicas": ray_spec.replicas, "num_cpus": ray_spec.num_cpus,
                          "num_gpus": ray_spec.num_gpus, "cluster": ray_spec.cluster,
                          "routing": ray_spec.routing, "pool_workers": workers,
                          "pool_eps": round(pool, 3),
                          "ray_overhead_pct": round(100 * (1 - engine / pool), 2),
                          "ray_loadgen_overhead_pct": round(100 * (1 - through / pool), 2),
                          "answers_identical": f"{same}/{len(tasks)}"}
        print(f"Ray overhead       {figures['ray']['ray_overhead_pct']:8.2f}% engine through Ray "
              f"against the pool ({workers} workers), "
              f"{figures['ray']['ray_loadgen_overhead_pct']:.2f}% through Ray and LoadGen; "
              f"answers identical {same}/{len(tasks)}", flush=True)
    if cost:
        figures["constraint"] = cost
    if execs:
        figures["executors"] = execs
    print(f"engine / naive     {figures['engine_over_naive']:8.2f}x")
    print(f"LoadGen overhead   {figures['loadgen_overhead_pct']:8.2f}% against the engine "
          "called directly" + (f" (means of {args.rounds} rounds each, ABBA order; per round "
                               f"{spread['mean_pct']:+.2f}% +- {spread['stdev_pct']:.2f} "
                               f"(stdev), {spread['min_pct']:+.2f} .. {spread['max_pct']:+.2f})"
                               if args.rounds > 1 else ""))
    if args.agreement:
        same = sum(a.answer == b.answer for a, b in zip(naive_results, engine_results))
        figures["agreement_naive_engine"] = round(same / len(naive_results), 4)
        print(f"answers identical  {same}/{len(naive_results)} (engine vs naive)")
    if args.peers:
        figures.update(_run_peers(model, tasks[: args.peer_tasks], make_env, engine_results,
                                  engine, workers * threads, stage))
        torch.set_num_threads(threads)
    make_env.close()
    if server_qps:
        srv_batch = Tuning.of(tuning, args.benchmark, "Server").max_batch
        figures["server"] = []
        for qps in server_qps:
            stage(f"Server at {qps:g} QPS for {args.server_seconds:g} s")
            row = server_p99_ms(rules, bench, checkpoint, qps, args.server_seconds, tuning,
                                srv_batch)
            figures["server"].append(row)
            print(f"Server {qps:6.2f} QPS   p99 {row['p99_ms']:9.1f} ms  mean "
                  f"{row['mean_ms']:8.1f} ms  (latency unbounded, {args.server_seconds:.0f} s)",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
