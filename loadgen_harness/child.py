"""One LoadGen test in its own process (started by loadgen_harness.runner, not by hand).

    python -m loadgen_harness.child SPEC.json

LoadGen aborts or segfaults its process on several SUT mistakes and hangs on a sample that is
never completed, so every test runs here, under the parent's watchdog. This process loads the
model, runs StartTest on a background thread (the main thread waits in short joins, so a
worker crash is noticed at once), writes LoadGen's logs and the agent trace into the spec's
directory, and finishes with `run_status.json`. Exit code 0 means the test ran to the end.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import mlperf_loadgen as lg
import torch

from reference.rules import load_rules
from loadgen_harness.spec import RunSpec
from loadgen_harness.sut import QSL, SUTS, EpisodeFactory
from loadgen_harness.trace import TraceWriter
from reference.checkpoint import load_model
from reference.workloads import get_workload

LOADGEN_SCENARIO = {"Offline": lg.TestScenario.Offline, "Server": lg.TestScenario.Server,
                    "SingleStream": lg.TestScenario.SingleStream}
MODES = {"AccuracyOnly": lg.TestMode.AccuracyOnly, "PerformanceOnly": lg.TestMode.PerformanceOnly}


def test_settings(spec: RunSpec) -> lg.TestSettings:
    ts = lg.TestSettings()
    ts.scenario = LOADGEN_SCENARIO[spec.scenario]
    ts.mode = MODES[spec.mode]
    for name, value in spec.settings.items():
        if not hasattr(ts, name):
            raise KeyError(f"unknown LoadGen setting {name!r}")
        setattr(ts, name, value)
    return ts


def _status(out: Path, **fields) -> None:
    tmp = out / "run_status.json.tmp"
    tmp.write_text(json.dumps(fields, indent=1) + "\n")
    tmp.replace(out / "run_status.json")


def run(spec: RunSpec) -> int:
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)  # LoadGen aborts later if its log dir is missing
    torch.set_num_threads(spec.threads)
    # the Ray backend's replicas load the model themselves; the driver runs only LoadGen
    model = load_model(Path(spec.checkpoint), spec.device) if spec.backend == "local" else None
    benchmark = spec.benchmark
    # The episode bound is a rule: rules.yaml's max_steps, the number the checker holds traces to.
    rules = load_rules(Path(spec.rules)) if spec.rules else load_rules()
    bench = rules.benchmark(benchmark)
    workload = get_workload(benchmark, bench.workload)
    tasks = workload.load_tasks(Path(spec.eval_set))
    make_env = EpisodeFactory(rules, benchmark, verifier_workers=spec.verifier_workers)
    fault = spec.fault  # fault injection, used only by the watchdog tests
    trace = TraceWriter(out / "agent_trace.jsonl", tasks, spec.mode)

    def on_episode(idx, result, served_by=None):
        if fault == "raise":
            raise RuntimeError("injected SUT fault")
        if fault == "hang":
            threading.Event().wait()
        trace.write(idx, result, served_by)

    pool = None
    if spec.backend == "ray":  # Ray is an optional extra: imported only for this backend
        from loadgen_harness import ray_pool
        ray_pool.connect(spec)

        def pool(on_done):
            return ray_pool.RayPool(spec, on_done, fault=fault)
    sut = SUTS[spec.scenario](model, tasks, n_workers=spec.workers,
                                 on_episode=on_episode, max_batch=spec.max_batch,
                                 draft=spec.draft,
                                 make_env=make_env, pool=pool)
    qsl = QSL(len(tasks), spec.performance_sample_count or len(tasks))
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(out)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # can write hundreds of MB
    settings = test_settings(spec)
    sut.start()
    t0 = time.time()
    runner = threading.Thread(target=lg.StartTestWithLogSettings,
                              args=(sut.sut, qsl.qsl, settings, log_settings), daemon=True)
    runner.start()
    while runner.is_alive():
        runner.join(0.2)
        if sut.errors:
            err = sut.errors[0]
            _status(out, ok=False, error=f"SUT worker failed: {type(err).__name__}: {err}",
                    traceback="".join(traceback.format_exception(err)),
                    completed=sut.completed)
            trace.close()
            if spec.backend == "ray":  # a local cluster's processes must not outlive the run
                ray_pool.shutdown(sut.pool)
            sys.stderr.flush()
            os._exit(3)  # StartTest would wait forever for the samples that worker held
    wall = time.time() - t0
    sut.stop()
    qsl.destroy()
    trace.close()
    make_env.close()
    stats = [e.stats for e in sut.pool.engines]
    extra = {"replicas": sut.pool.where} if spec.backend == "ray" else {}
    _status(out, ok=True, completed=sut.completed, wall_s=round(wall, 3),
            tokens_decoded=sum(s["tokens_decoded"] for s in stats),
            tokens_drafted=sum(s["drafted"] for s in stats),
            drafted_tokens_kept=sum(s["accepted"] for s in stats), **extra)
    return 0


def main() -> None:
    sys.exit(run(RunSpec.read(Path(sys.argv[1]))))


if __name__ == "__main__":
    main()
