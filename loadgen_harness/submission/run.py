"""The runs of a submission: each LoadGen run in its child process under a watchdog, re-run
where rules.md section 4.1 allows, its files pruned to the layout and its accuracy scored, with
a progress display."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from loadgen_harness.logs import accuracy_from_log, read_accuracy_log, read_detail
from loadgen_harness.runner import run_test
from loadgen_harness.spec import RunSpec, Tuning
from loadgen_harness.submission.plan import (RunPlan, ServerOffer, SubmissionError,
                                             audit_breaks_rules, server_shortfall,
                                             suggested_server_qps)
from reference.grading import bounded_quality, load_tasks

KEEP = {"accuracy": ["mlperf_log_accuracy.json", "mlperf_log_detail.txt",
                     "mlperf_log_summary.txt", "agent_trace.jsonl"],
        "performance": ["mlperf_log_detail.txt", "mlperf_log_summary.txt", "agent_trace.jsonl"],
        "audit": ["mlperf_log_accuracy.json", "mlperf_log_detail.txt", "mlperf_log_summary.txt",
                  "agent_trace.jsonl"]}

# an adaptive (smoke) profile re-runs a Server run that missed its latency bound at most
# this many times, each at a lower rate
ADAPTIVE_SERVER_RERUNS = 2



def console(stderr: bool = False):
    """A rich console that never wraps or cuts a line when its output is not a terminal (a
    log or a pipe keeps whole paths); on a terminal, rich's own layout."""
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=1000, soft_wrap=True, no_color=True)


class Progress:
    """A rich progress display (or plain lines when there is no terminal)."""

    def __init__(self, plans: list[RunPlan]):
        from rich.progress import (BarColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self.console = console(stderr=True)
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                console=self.console, transient=False)
        self.total = self.bar.add_task("submission", total=sum(p.expected_s for p in plans))
        self.done_s = 0.0

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def replan(self, plans: list[RunPlan]):
        """The plans' expected times changed (a Server rate set from a measured one)."""
        self.bar.update(self.total, total=sum(p.expected_s for p in plans))

    def start(self, plan: RunPlan):
        self.current = self.bar.add_task(plan.label, total=plan.expected_s)
        self.plan = plan

    def poll(self, elapsed: float):
        e = min(elapsed, self.plan.expected_s * 0.99)
        self.bar.update(self.current, completed=e)
        self.bar.update(self.total, completed=self.done_s + e)

    def finish(self, note: str):
        self.done_s += self.plan.expected_s
        self.bar.update(self.current, completed=self.plan.expected_s,
                        description=f"{self.plan.label}: {note}")
        self.bar.update(self.total, completed=self.done_s)


def run_plan(plan: RunPlan, rules, profile, tuning: dict, results_dir: Path, ckpts: dict,
              calibrated: dict, progress, offer: ServerOffer | None = None) -> None:
    """One LoadGen run of the plan in its child process, re-run where section 4.1 allows
    (an Offline run that finished early, an audit a busy machine pushed over), its files
    pruned to the layout, and its accuracy scored."""
    run_dir = results_dir / plan.benchmark / plan.scenario / plan.rel_dir
    bench = rules.benchmark(plan.benchmark)
    scored_set = bench.splits[plan.split] if plan.split else bench
    spec = RunSpec(plan.benchmark, plan.scenario, plan.mode, str(run_dir),
                   str(ckpts[plan.benchmark][0]), str(scored_set.eval_set), plan.settings,
                   **Tuning.of(tuning, plan.benchmark, plan.scenario).run_fields())
    progress.start(plan)
    t0 = time.time()
    timeout_s = plan.expected_s * 3 + 120
    if plan.rel_dir.startswith("audit/") and plan.benchmark in calibrated:
        # audits run with the performance run's calibrated Offline rate
        plan.settings["offline_expected_qps"] = calibrated[plan.benchmark]
        spec.settings = plan.settings
    run_test(spec, timeout_s=timeout_s, on_poll=progress.poll)
    if plan.scenario == "Offline" and plan.mode == "PerformanceOnly":
        # LoadGen pre-generates 1.1 x min_duration x expected_qps samples; a SUT faster than
        # expected finishes early and the run is INVALID. Re-run once with the measured rate,
        # and record that the rate was calibrated.
        d = read_detail(run_dir / "mlperf_log_detail.txt")
        measured = d.get("result_samples_per_second") or 0
        if (not d.get("result_min_duration_met")
                and measured > plan.settings["offline_expected_qps"]):
            plan.settings["offline_expected_qps"] = round(measured * 1.25, 2)
            if plan.rel_dir == "performance/run_1":
                calibrated[plan.benchmark] = plan.settings["offline_expected_qps"]
            spec.settings = plan.settings
            shutil.rmtree(run_dir)
            run_test(spec, timeout_s=timeout_s, on_poll=progress.poll)
    if plan.scenario == "Server" and plan.rel_dir == "performance/run_1" and offer \
            and offer.adaptive:
        # the smoke profile proves the pipeline, not a rate: a Server run that a busy machine
        # pushed over its latency bound (its p99, or queries over the bound that LoadGen's
        # early stopping counts) runs again at the lower rate its own latency suggests, at
        # most ADAPTIVE_SERVER_RERUNS times, and each lowering is recorded in the offer
        bound = bench.target_latency_ns("Server")
        for _ in range(ADAPTIVE_SERVER_RERUNS):
            d = read_detail(run_dir / "mlperf_log_detail.txt")
            why = server_shortfall(d, bound)[0]
            lower = suggested_server_qps(plan.settings["server_target_qps"], d, bound)
            if d.get("result_validity") == "VALID" or lower is None:
                break
            progress.console.print(f"{plan.label}: {why} at "
                                   f"{plan.settings['server_target_qps']:g}/s; running it "
                                   f"again at {lower:g}/s")
            offer.lower(lower, f"the Server run at {plan.settings['server_target_qps']:g}/s "
                               f"missed its latency bound ({why})")
            offer.apply(plan)
            spec.settings = plan.settings
            shutil.rmtree(run_dir)
            run_test(spec, timeout_s=plan.expected_s * 3 + 120, on_poll=progress.poll)
    if plan.rel_dir.startswith("audit/"):
        audit_problem = audit_breaks_rules(
            read_detail(run_dir / "mlperf_log_detail.txt"), profile, plan.scenario)
        if audit_problem:  # once more: a busy machine can push one run over
            progress.console.print(f"{plan.label}: {audit_problem}; running it again")
            shutil.rmtree(run_dir)
            run_test(spec, timeout_s=timeout_s, on_poll=progress.poll)
            audit_problem = audit_breaks_rules(
                read_detail(run_dir / "mlperf_log_detail.txt"), profile, plan.scenario)
        if audit_problem:
            raise SubmissionError(
                f"{plan.label}: the audit run breaks rules.md section 4.1 "
                f"({audit_problem}); nothing was written")
    for f in list(run_dir.iterdir()):
        if f.is_file() and f.name not in KEEP[plan.rel_dir.split("/")[0]]:
            f.unlink()
    note = f"done in {time.time() - t0:.0f}s"
    if plan.mode == "AccuracyOnly":
        acc = score_accuracy(run_dir, plan, bench, scored_set, profile)
        note += f", {bench.quality_metric} {acc[bench.quality_metric]:.4f}"
    progress.finish(note)


def score_accuracy(run_dir: Path, plan: RunPlan, bench, scored_set, profile) -> dict:
    """The accuracy run's quality against its frozen set, written as accuracy.json."""
    tasks = load_tasks(plan.benchmark, scored_set.eval_set)
    acc = accuracy_from_log(run_dir / "mlperf_log_accuracy.json", tasks, plan.benchmark,
                            profile.accuracy_sample_count, metric=bench.quality_metric)
    scored = [e["qsl_idx"] for e in read_accuracy_log(run_dir / "mlperf_log_accuracy.json")]
    target = scored_set.subset_target(scored)
    acc.update(metric=bench.quality_metric, target=target,
               passed=acc[bench.quality_metric] >= target)
    if bench.quality_bounds and not plan.split:  # further figures from the run's trace
        steps: dict[int, list] = {}
        for line in (run_dir / "agent_trace.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec["mode"] == "AccuracyOnly" and 0 <= rec["qsl_idx"] < len(tasks):
                steps.setdefault(rec["qsl_idx"], rec["steps"])
        acc["bounds"] = bounded_quality(plan.benchmark, bench.quality_bounds, tasks, steps,
                                        bench.reference_results, len(tasks))
        acc["passed"] = acc["passed"] and all(b["ok"] for b in acc["bounds"].values())
    if plan.split:
        acc.update(split=plan.split, eval_set_sha256=scored_set.eval_set_sha256)
    (run_dir / "accuracy.json").write_text(json.dumps(acc, indent=1) + "\n")
    return acc
