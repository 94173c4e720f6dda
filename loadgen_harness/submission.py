"""`make submission`: every benchmark x scenario in both modes, in the MLPerf layout.

    python -m loadgen_harness.submission --system cpu                  # official profile
    python -m loadgen_harness.submission --system cpu --profile smoke  # about 9 minutes
    make submission SYSTEM=a100 PROFILE=smoke SUBMITTER=alice

Reads systems/<system>.yaml, probes the machine (a contradiction stops the run unless
--allow-mismatch, which is recorded), runs each LoadGen test in a child process under a
watchdog, and writes

    results/<division>/<submitter>/
      submission.json  systems/<system>.json
      code/              code.json, patch.diff, system.yaml: the code that ran
                         (loadgen_harness/codepack.py; `compliance reproduce` re-runs it)
      results/<system>/<benchmark>/<scenario>/
        user.conf  measurements.json  README.md
        accuracy/          mlperf_log_{accuracy.json,detail.txt,summary.txt}
                           accuracy.json  agent_trace.jsonl
        accuracy/generalisation/   the same files for the benchmark's generalisation split
                           (rules.yaml `splits`: its own frozen set, target and accuracy run)
        performance/run_1/ mlperf_log_{detail,summary}.txt  agent_trace.jsonl
        audit/TEST01/      sampled performance-mode answers (compared with accuracy mode)
        audit/TEST04/      one sample issued repeatedly (exposes result caching)

Everything is built in a hidden staging directory and moved into place only when every run
has finished, so an interrupted or failed run leaves nothing that looks complete, and a
re-run replaces the system's results whole. Smoke results are marked not eligible.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loadgen_harness.codepack import CodeError, base_commit, sha256, working_patch, write_code
from loadgen_harness.logs import accuracy_from_log, read_accuracy_log, read_detail
from loadgen_harness.runner import RunError, run_test
from loadgen_harness.spec import RunSpec, Tuning
from loadgen_harness.system import (SYSTEMS_DIR, DeclarationError, load_system, mismatches,
                                     probe, tuning_problems)
from reference.grading import bounded_quality, load_tasks
from reference.hashing import file_sha256
from reference.rules import ROOT, SCENARIOS, RulesError, load_rules

STARTUP_S = 8.0  # a run's process start (torch import, model load), measured about 4 s
KEEP = {"accuracy": ["mlperf_log_accuracy.json", "mlperf_log_detail.txt",
                     "mlperf_log_summary.txt", "agent_trace.jsonl"],
        "performance": ["mlperf_log_detail.txt", "mlperf_log_summary.txt", "agent_trace.jsonl"],
        "audit": ["mlperf_log_accuracy.json", "mlperf_log_detail.txt", "mlperf_log_summary.txt",
                  "agent_trace.jsonl"]}


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REFERENCE = "reference"  # the committed reference submission's submitter name


class SubmissionError(Exception):
    """A user-facing reason why no submission was written."""


@dataclass
class RunPlan:
    benchmark: str
    scenario: str
    mode: str            # AccuracyOnly | PerformanceOnly
    rel_dir: str         # accuracy | accuracy/<split> | performance/run_1 | audit/<TEST>
    settings: dict
    expected_s: float
    split: str | None = None   # AccuracyOnly on a further frozen set (rules.yaml `splits`)

    @property
    def label(self) -> str:
        kind = (f"accuracy ({self.split})" if self.split else
                "accuracy" if self.mode == "AccuracyOnly" else
                self.rel_dir.split("/")[-1] if self.rel_dir.startswith("audit") else "performance")
        return f"{self.benchmark} {self.scenario} {kind}"


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    state = {"commit": commit or "unknown", "dirty": bool(dirty)}
    base = base_commit()
    if base and dirty:  # what a merge with kept results must share (codepack's patch)
        try:
            state["patch_sha256"] = sha256(working_patch(base)[0])
        except CodeError:
            pass
    return state


def loadgen_settings(rules, bench, scenario: str, mode: str, profile, tuning: dict) -> dict:
    s = dict(rules.official_seeds)
    s["min_duration_ms"] = profile.min_duration_ms
    s["min_query_count"] = int(profile.min_query_count[scenario])
    if scenario == "Offline":
        s["offline_expected_qps"] = float(tuning["offline_expected_qps"])
    elif scenario == "Server":
        s["server_target_qps"] = _qps_hint(scenario, tuning, profile)
        s["server_target_latency_ns"] = bench.target_latency_ns("Server")
        s["server_target_latency_percentile"] = bench.scenarios["Server"]["latency_percentile"] / 100
    elif scenario == "SingleStream":
        s["single_stream_expected_latency_ns"] = int(tuning["single_stream_expected_latency_ms"] * 1e6)
        s["single_stream_target_latency_percentile"] = \
            bench.scenarios["SingleStream"]["latency_percentile"] / 100
    if mode == "AccuracyOnly" and profile.accuracy_sample_count:
        s["accuracy_sample_count_override"] = profile.accuracy_sample_count
    return s


def audit_settings(rules, profile, scenario: str = "Offline") -> dict[str, dict]:
    """LoadGen settings that turn a performance run into each audit run (rules.md 4.1: each
    audit run lasts the profile's audit duration and issues its audit query count; a Server
    audit needs 459 queries before LoadGen's early stopping can call it VALID)."""
    a = rules.audits
    short = {"min_duration_ms": profile.audit_min_duration_ms,
             "min_query_count": int(profile.audit_min_query_count[scenario])}
    return {
        "TEST01": {**short, "accuracy_log_probability": a["TEST01"]["accuracy_log_probability"],
                   "accuracy_log_rng_seed": a["TEST01"]["accuracy_log_rng_seed"]},
        "TEST04": {**short, "performance_issue_same": True,
                   "performance_issue_same_index": a["TEST04"]["sample_index"]},
    }


def audit_breaks_rules(detail: dict, profile, scenario: str) -> str:
    """Why an audit run's detail log breaks section 4.1 ('' if it does not): the checker's
    A504 holds every audit run to the same (VALID, duration, samples issued). A Server or
    SingleStream audit whose only failure is its latency counts: audits judge answers and
    caching, and a busy machine's latency tail says nothing about either."""
    latency_only = (scenario != "Offline" and detail.get("result_min_duration_met") is True
                    and detail.get("result_min_queries_met") is True)
    if detail.get("result_validity") != "VALID" and not latency_only:
        return f"LoadGen says {detail.get('result_validity')}: " \
               f"{detail.get('result_invalid_reason') or 'see its summary'}"
    n = (detail.get("generated_query_count") or 0) * (detail.get("generated_samples_per_query") or 0)
    if n < profile.audit_min_query_count[scenario]:
        return f"{n} samples issued, fewer than {profile.audit_min_query_count[scenario]}"
    if not detail.get("result_min_duration_met"):
        return "shorter than its min duration"
    return ""


def _qps_hint(scenario: str, tuning: dict, profile) -> float:
    if scenario == "Offline":
        return float(tuning["offline_expected_qps"])
    if scenario == "Server":  # the profile's share of the system's rate (smoke: a margin)
        return float(tuning["server_target_qps"]) * profile.server_qps_fraction
    return 1000.0 / float(tuning["single_stream_expected_latency_ms"])


def plan_runs(rules, profile, benchmarks, scenarios, tuning_all: dict) -> list[RunPlan]:
    plans = []
    for bname in benchmarks:
        bench = rules.benchmark(bname)
        for scen in scenarios:
            if scen not in bench.scenarios:
                raise SubmissionError(f"{bname} has no {scen} scenario in rules.yaml")
            tuning = tuning_all.get("benchmarks", {}).get(bname, {}).get(scen)
            if not tuning:
                raise SubmissionError(f"systems file has no tuning for {bname} {scen}")
            qps = _qps_hint(scen, tuning, profile)
            n_acc = profile.accuracy_sample_count or bench.eval_set_size
            acc_qps = _qps_hint("Offline", tuning, profile) if scen == "Offline" else qps
            plans.append(RunPlan(bname, scen, "AccuracyOnly", "accuracy",
                                 loadgen_settings(rules, bench, scen, "AccuracyOnly", profile, tuning),
                                 STARTUP_S + n_acc / acc_qps))
            for split in bench.splits.values():  # e.g. the generalisation split (issue 12)
                n_split = profile.accuracy_sample_count or split.eval_set_size
                plans.append(RunPlan(bname, scen, "AccuracyOnly", f"accuracy/{split.name}",
                                     loadgen_settings(rules, bench, scen, "AccuracyOnly", profile,
                                                      tuning),
                                     STARTUP_S + n_split / acc_qps, split=split.name))
            dur = max(profile.min_duration_ms / 1000, profile.min_query_count[scen] / qps) * 1.1
            perf = loadgen_settings(rules, bench, scen, "PerformanceOnly", profile, tuning)
            plans.append(RunPlan(bname, scen, "PerformanceOnly", "performance/run_1", perf,
                                 STARTUP_S + dur))
            audit_s = max(profile.audit_min_duration_ms / 1000,
                          profile.audit_min_query_count[scen] / qps) * 1.1
            for name, extra in audit_settings(rules, profile, scen).items():
                plans.append(RunPlan(bname, scen, "PerformanceOnly", f"audit/{name}",
                                     {**perf, **extra}, STARTUP_S + audit_s))
    return plans


def user_conf(plan: RunPlan) -> str:
    names = {"min_duration_ms": "min_duration", "min_query_count": "min_query_count",
             "offline_expected_qps": "target_qps", "server_target_qps": "target_qps",
             "server_target_latency_ns": "target_latency",
             "single_stream_expected_latency_ns": "target_latency"}
    lines = ["# LoadGen user settings of this result (written by make submission)"]
    for key, name in names.items():
        if key in plan.settings:
            v = plan.settings[key]
            if key.endswith("_ns"):
                v = int(v / 1e6)  # user.conf latencies are in ms
            lines.append(f"{plan.benchmark}.{plan.scenario}.{name} = {v}")
    return "\n".join(lines) + "\n"


def trace_summary(path: Path) -> dict:
    n = steps = tokens = 0
    gen_ms = tool_ms = 0.0
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            n += 1
            steps += len(rec["steps"])
            tokens += rec["generated_tokens"]
            gen_ms += sum(s["generation_ms"] for s in rec["steps"])
            tool_ms += sum(s["tool_ms"] for s in rec["steps"])
    return {"episodes": n, "mean_steps": round(steps / max(n, 1), 3),
            "mean_generated_tokens": round(tokens / max(n, 1), 2),
            "generation_ms_share": round(gen_ms / max(gen_ms + tool_ms, 1e-9), 4),
            "tool_ms_share": round(tool_ms / max(gen_ms + tool_ms, 1e-9), 4)}


SCENARIO_METRIC_KEY = {"Offline": "result_samples_per_second",
                       "Server": "result_scheduled_samples_per_sec",
                       "SingleStream": "result_90.00_percentile_latency_ns"}


def performance_result(scenario: str, detail: dict, metric: str) -> dict:
    value = detail.get(SCENARIO_METRIC_KEY[scenario])
    if scenario == "SingleStream" and value is not None:
        value = value / 1e6
    return {"metric": metric,
            "value": value, "validity": detail.get("result_validity"),
            "min_duration_met": detail.get("result_min_duration_met"),
            "min_queries_met": detail.get("result_min_queries_met"),
            "perf_constraints_met": detail.get("result_perf_constraints_met"),
            "mean_latency_ms": (detail.get("result_mean_latency_ns") or 0) / 1e6,
            "p99_latency_ms": (detail.get("result_99.00_percentile_latency_ns") or 0) / 1e6,
            "loadgen_errors": detail["__errors__"]}


@dataclass
class ServerOffer:
    """The rate a benchmark's Server runs offer, and why (recorded in measurements.json).

    Official profile: the system file's server_target_qps (the student's tuning; too high a
    rate ends INVALID). An adaptive profile (rules.yaml `server_qps_of_offline`, the smoke
    profile) offers no more than that share of the Offline rate this submission has just
    measured on this machine, so a busy machine still serves it within the bound."""
    declared_qps: float          # the system file's server_target_qps
    profile_fraction: float      # the profile's server_qps_fraction
    of_offline: float | None     # the profile's server_qps_of_offline (None: not adaptive)
    offline_measured_qps: float | None
    offered_qps: float = 0.0
    basis: str = ""

    @classmethod
    def of(cls, profile, tuning: dict, offline_measured: float | None) -> "ServerOffer":
        o = cls(float(tuning["server_target_qps"]), profile.server_qps_fraction,
                profile.server_qps_of_offline, offline_measured)
        o.offered_qps = round(o.declared_qps * o.profile_fraction, 3)
        o.basis = (f"the system file's server_target_qps x {o.profile_fraction:g}"
                   if o.profile_fraction != 1 else "the system file's server_target_qps")
        if o.of_offline and offline_measured:
            measured = round(offline_measured * o.of_offline, 3)
            if measured < o.offered_qps:
                o.offered_qps = measured
                o.basis = (f"{o.of_offline:g} x the Offline rate measured in this submission "
                           f"({offline_measured:.2f}/s)")
        elif o.of_offline:
            o.basis += " (no Offline run in this submission to measure the machine by)"
        return o

    @property
    def adaptive(self) -> bool:
        return self.of_offline is not None

    def lower(self, qps: float, why: str) -> None:
        self.offered_qps, self.basis = qps, f"{self.basis}; lowered to {qps:g}/s: {why}"

    def apply(self, plan: RunPlan) -> None:
        """Offer this rate in a Server plan (and stretch its expected time to match)."""
        old = plan.settings.get("server_target_qps")
        plan.settings["server_target_qps"] = self.offered_qps
        if old and old != self.offered_qps:
            plan.expected_s = STARTUP_S + (plan.expected_s - STARTUP_S) * old / self.offered_qps

    def record(self) -> dict:
        return {"offered_qps": self.offered_qps, "basis": self.basis,
                "declared_qps": self.declared_qps, "profile_fraction": self.profile_fraction,
                "of_offline": self.of_offline, "offline_measured_qps": self.offline_measured_qps}


def _measured_offline(bench_dir: Path) -> float | None:
    """The Offline performance rate this submission measured for a benchmark (None: none)."""
    d = read_detail(bench_dir / "Offline/performance/run_1/mlperf_log_detail.txt") \
        if (bench_dir / "Offline/performance/run_1/mlperf_log_detail.txt").is_file() else {}
    rate = d.get("result_samples_per_second")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def server_shortfall(detail: dict, bound_ns) -> tuple[str, float | None]:
    """Why a Server run's latency kept it from VALID, in words from its detail log, and the
    factor to scale its offered rate by (None: a lower rate would not help, or it met the
    bound). LoadGen's early stopping makes a run INVALID when more queries are over the bound
    than its query count allows (none at all under 459 queries for p99), so a p99 within the
    bound is not enough: the queries over it count too."""
    def num(key):
        v = detail.get(key)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    p99, worst = num("result_99.00_percentile_latency_ns"), num("result_max_latency_ns")
    over, count = num("result_overlatency_query_count"), num("result_query_count")
    if not bound_ns or p99 is None:
        return "p99 unknown", None
    if p99 > bound_ns:
        # queueing makes latency grow faster than linearly with the rate: a 20% margin errs low
        return _p99_text(p99, bound_ns), min(0.9, 0.8 * bound_ns / p99)
    if over and worst and worst > bound_ns:
        queries = f" of {count:,.0f}" if count else ""
        return (f"{_p99_text(p99, bound_ns).replace('against', 'within')}, but {over:,.0f}"
                f"{queries} queries over it (LoadGen's early stopping allows fewer at this "
                f"query count)", min(0.7, max(0.5, 0.8 * bound_ns / worst)))
    return _p99_text(p99, bound_ns), None


def suggested_server_qps(offered: float, detail: dict, bound_ns) -> float | None:
    """A Server rate to try after a run that broke its latency bound: the offered rate scaled
    by server_shortfall's factor. None when the latency is unknown or met the bound."""
    factor = server_shortfall(detail, bound_ns)[1]
    return None if factor is None else max(round(offered * factor, 2), 0.01)


def _p99_text(p99_ns, bound_ns) -> str:
    p99 = f"{p99_ns / 1e6:,.0f} ms" if isinstance(p99_ns, (int, float)) else "unknown"
    return f"p99 {p99} against the {bound_ns / 1e6:,.0f} ms bound"


def server_advice(bname: str, detail: dict, bound_ns, offer: ServerOffer | None,
                  system: str) -> str:
    """One line for a Server run that ended INVALID: what was offered, what its latency was
    against the bound (the p99, and the queries over the bound that early stopping counts),
    and a rate to try, taken from the measurement."""
    why = server_shortfall(detail, bound_ns)[0]
    validity = detail.get("result_validity") or "INVALID"
    offered = offer.offered_qps if offer else None
    line = (f"{bname} Server is {validity}: offered {offered:g}/s, {why}" if offered else
            f"{bname} Server is {validity}: {why}")
    lower = suggested_server_qps(offered, detail, bound_ns) if offered else None
    if lower is not None and offer is not None:
        declared = round(lower / offer.profile_fraction, 2)
        line += f"; try server_target_qps: {declared:g} in systems/{system}.yaml"
    else:
        line += f"; see its mlperf_log_summary.txt, then lower server_target_qps in " \
                f"systems/{system}.yaml"
    return line


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


def make_submission(system: str, profile_name: str = "official", benchmarks=None,
                    scenarios=("Offline", "Server"), out_root: Path = ROOT / "results",
                    submitter: str = "reference", division: str = "closed",
                    allow_mismatch: bool = False, checkpoint: Path | None = None,
                    compress_traces: bool = False, as_reference: bool = False,
                    replace: bool = False) -> Path:
    """Run every benchmark x scenario x mode (and the audits) and write the submission to
    out_root/division/submitter; nothing is written when anything fails. Results already
    there for other benchmarks or scenarios of the same system are kept (each result is
    swapped in whole); `replace` drops them instead. The committed reference submission is
    written only with `as_reference`."""
    rules = load_rules()
    profile = rules.profile(profile_name)
    benchmarks = list(benchmarks or rules.benchmarks)
    for b in benchmarks:
        rules.benchmark(b)  # an unknown name is a RulesError with the known ones
    for what, name in (("SUBMITTER", submitter), ("DIVISION", division), ("SYSTEM", system)):
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise SubmissionError(f"bad {what} {name!r}: letters, digits, '.', '_' and '-', "
                                  f"starting with a letter or digit, at most 64 characters")
    if submitter.casefold() == REFERENCE and not as_reference:
        raise SubmissionError(
            f"SUBMITTER={submitter} would overwrite the committed reference submission "
            f"(results/{division}/{REFERENCE}); use your own name (make submission "
            f"SUBMITTER=alice), or REFERENCE=1 (--as-reference) to regenerate it on purpose")
    doc, found, bad = _check_machine(system, allow_mismatch, rules)
    tuning = doc["tuning"]
    ckpts = _check_inputs(rules, benchmarks, division, checkpoint)
    plans = plan_runs(rules, profile, benchmarks, scenarios, tuning)

    final = Path(out_root) / division / submitter
    git = git_state()
    replace = replace or _must_replace(final, system, profile, doc, replace, git)
    staging = Path(out_root) / f".staging-{division}-{submitter}-{system}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    summary_rows = []
    try:
        sysdir = staging / "systems"
        sysdir.mkdir(parents=True)
        (sysdir / f"{system}.json").write_text(json.dumps({
            "schema_version": 1, "system": system, **doc, "probe": found,
            "mismatches": bad, "mismatch_override": bool(bad and allow_mismatch)}, indent=1) + "\n")
        results_dir = staging / "results" / system
        calibrated: dict[str, float] = {}
        offers: dict[str, ServerOffer] = {}
        with Progress(plans) as progress:
            for plan in plans:
                if plan.scenario == "Server":
                    offer = offers.setdefault(plan.benchmark, ServerOffer.of(
                        profile, tuning["benchmarks"][plan.benchmark]["Server"],
                        _measured_offline(results_dir / plan.benchmark)))
                    offer.apply(plan)
                    progress.replan(plans)
                _run_plan(plan, rules, profile, tuning, results_dir, ckpts, calibrated, progress,
                          offers.get(plan.benchmark))
        for bname in benchmarks:
            for scen in scenarios:
                summary_rows += _write_result_files(
                    results_dir / bname / scen, rules, profile, plans, bname, scen,
                    system=system, division=division, submitter=submitter, created=created,
                    git=git, checkpoint_sha256=ckpts[bname][1],
                    calibrated=calibrated.get(bname) if scen == "Offline" else None,
                    offer=offers.get(bname) if scen == "Server" else None)
        try:
            write_code(staging / "code", system, SYSTEMS_DIR / f"{system}.yaml",
                       int(rules.checker["max_code_patch_bytes"]))
        except CodeError as err:
            raise SubmissionError(str(err)) from None
        if compress_traces:
            compress_all_traces(staging)
        _swap_in(staging, final, system, replace)
        _update_index(final, system, profile, git, created, replace)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _print_summary(summary_rows, profile)
    for bname, scen, perf, _ in summary_rows:
        if scen == "Server" and perf and perf["validity"] != "VALID":
            detail = read_detail(final / "results" / system / bname /
                                 "Server/performance/run_1/mlperf_log_detail.txt")
            print(server_advice(bname, detail, rules.benchmark(bname).target_latency_ns(
                "Server"), offers.get(bname), system))
    return final


def _check_machine(system: str, allow_mismatch: bool, rules) -> tuple[dict, dict, list[str]]:
    """The system file, the probe of this machine, and where they disagree (an error unless
    the override is asked for, which is recorded). A tuning this machine cannot run, or that
    names an unknown benchmark, stops the run whatever the override."""
    doc = load_system(system)
    found = probe()
    bad = mismatches(doc["declaration"], found)
    if bad and not allow_mismatch:
        raise SubmissionError(
            f"systems/{system}.yaml does not describe this machine:\n  - " + "\n  - ".join(bad)
            + "\nFix the declaration, pick another SYSTEM, or override with --allow-mismatch"
              " (ALLOW_MISMATCH=1); an override is recorded in the submission.")
    problems = tuning_problems(doc, found, rules.benchmarks, SCENARIOS)
    if problems:
        raise SubmissionError(f"systems/{system}.yaml cannot run here:\n  - "
                              + "\n  - ".join(problems))
    return doc, found, bad


def _check_inputs(rules, benchmarks, division: str, checkpoint: Path | None) -> dict:
    """Every evaluation set matches rules.yaml; each benchmark's checkpoint exists (closed
    division: is the reference). Returns benchmark -> (checkpoint path, SHA-256)."""
    ckpts = {}
    for b in benchmarks:
        bench = rules.benchmark(b)
        for es in [bench, *bench.splits.values()]:
            if file_sha256(es.eval_set) != es.eval_set_sha256:
                raise SubmissionError(f"{es.eval_set} does not match its SHA-256 in rules.yaml")
        ckpt = Path(checkpoint) if checkpoint else bench.reference_checkpoint
        digest = file_sha256(ckpt) if ckpt.is_file() else None
        if digest is None:
            raise SubmissionError(f"no checkpoint at {ckpt}")
        if division == "closed" and digest != bench.reference_checkpoint_sha256:
            raise SubmissionError(f"closed division needs the reference checkpoint; {ckpt} has "
                                  f"SHA-256 {digest[:12]}..., rules.yaml says "
                                  f"{bench.reference_checkpoint_sha256[:12]}...")
        ckpts[b] = (ckpt, digest)
    return ckpts


# an adaptive (smoke) profile re-runs a Server run that missed its latency bound at most
# this many times, each at a lower rate
ADAPTIVE_SERVER_RERUNS = 2


def _run_plan(plan: RunPlan, rules, profile, tuning: dict, results_dir: Path, ckpts: dict,
              calibrated: dict, progress, offer: "ServerOffer | None" = None) -> None:
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
        if not d.get("result_min_duration_met") and measured > plan.settings["offline_expected_qps"]:
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
        acc = _score_accuracy(run_dir, plan, bench, scored_set, profile)
        note += f", {bench.quality_metric} {acc[bench.quality_metric]:.4f}"
    progress.finish(note)


def _score_accuracy(run_dir: Path, plan: RunPlan, bench, scored_set, profile) -> dict:
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


def _write_result_files(sdir: Path, rules, profile, plans, bname: str, scen: str, *, system,
                        division, submitter, created, git, checkpoint_sha256,
                        calibrated, offer=None) -> list[tuple]:
    """measurements.json, user.conf and README.md of one result, once its runs exist; the
    result's rows of the printed summary."""
    perf_plan = next(p for p in plans if p.benchmark == bname and
                     p.scenario == scen and p.mode == "PerformanceOnly")
    detail = read_detail(sdir / "performance/run_1/mlperf_log_detail.txt")
    acc = json.loads((sdir / "accuracy/accuracy.json").read_text())
    acc_splits = {name: json.loads((sdir / f"accuracy/{name}/accuracy.json").read_text())
                  for name in rules.benchmark(bname).splits}
    perf = performance_result(scen, detail, rules.benchmark(bname).metric(scen))
    m = {"schema_version": 1, "benchmark": bname, "scenario": scen,
         "system": system, "division": division, "submitter": submitter,
         "profile": profile.name, "eligible": profile.eligible,
         "created": created, "commit": git["commit"], "dirty": git["dirty"],
         "checkpoint_sha256": checkpoint_sha256,
         "rules_sha256": file_sha256(rules.path),
         "loadgen_version": detail.get("loadgen_version"),
         "performance": perf, "accuracy": acc, "accuracy_splits": acc_splits,
         "offline_expected_qps_calibrated": calibrated,
         **({"server_offer": offer.record()} if offer else {}),
         "trace": trace_summary(sdir / "performance/run_1/agent_trace.jsonl")}
    (sdir / "measurements.json").write_text(json.dumps(m, indent=1) + "\n")
    (sdir / "user.conf").write_text(user_conf(perf_plan))
    (sdir / "README.md").write_text(
        f"# {bname} {scen} on {system}\n\nProfile `{profile.name}`"
        f"{'' if profile.eligible else ' (NOT eligible for a leaderboard)'}; "
        f"commit `{git['commit']}`{' (dirty tree)' if git['dirty'] else ''}.\n\n"
        f"Reproduce: `make submission SYSTEM={system} PROFILE={profile.name}`\n")
    return [(bname, scen, perf, acc)] + [(bname, f"{scen} ({name})", None, sacc)
                                         for name, sacc in acc_splits.items()]


def compress_all_traces(root: Path) -> None:
    """Every agent_trace.jsonl under root as agent_trace.jsonl.gz (byte-for-byte reproducible:
    no name, no time stamp); the checker reads either (compliance.tree.COMPRESSIBLE)."""
    for path in sorted(root.rglob("agent_trace.jsonl")):
        gz = path.with_name(path.name + ".gz")
        with open(gz, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                  mtime=0, compresslevel=9) as f:
            f.write(path.read_bytes())
        path.unlink()


def _must_replace(final: Path, system: str, profile, doc: dict, replace: bool,
                  git: dict | None = None) -> bool:
    """Whether this run replaces the system's earlier results whole (True) or merges with
    them per benchmark x scenario (False); checked before any run, so a refusal costs
    nothing. Merging needs the same profile and the same system file (declaration and shared
    tuning, and each kept benchmark's tuning), or the kept results would be described by a
    file they were not run with. Official results are never replaced by smoke ones."""
    kept = final / "results" / system
    if replace or not kept.is_dir():
        return replace
    try:
        index = json.loads((final / "submission.json").read_text())
        before_profile = index["systems"][system]["profile"]
        before = json.loads((final / "systems" / f"{system}.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        raise SubmissionError(f"{final} holds results for {system} whose submission.json or "
                              f"systems/{system}.json cannot be read; REPLACE=1 (--replace) "
                              f"writes over them") from None
    if before_profile != profile.name:
        if not profile.eligible and before_profile == "official":
            raise SubmissionError(
                f"{final} holds official results for {system}; a {profile.name} run would "
                f"replace them. Use another SUBMITTER (e.g. SUBMITTER={final.name}-"
                f"{profile.name}), or REPLACE=1 (--replace) to drop them")
        print(f"note: the {before_profile} results for {system} in {final} are replaced by "
              f"this {profile.name} run", file=sys.stderr)
        return True
    kept_benchmarks = {p.name for p in kept.iterdir() if p.is_dir()}
    changed = [f"systems/{system}.yaml's {k}" for k in ("declaration",)
               if before.get(k) != doc.get(k)]
    entry = index["systems"][system]
    if git is not None and (entry.get("commit"), entry.get("dirty")) != \
            (git["commit"], git["dirty"]) or git and git["dirty"] and \
            _kept_patch(final) != git.get("patch_sha256"):
        changed.append("the suite's code (commit or uncommitted changes)")
    shared = lambda t: {k: v for k, v in (t or {}).items() if k != "benchmarks"}  # noqa: E731
    if shared(before.get("tuning")) != shared(doc.get("tuning")):
        changed.append(f"systems/{system}.yaml's tuning (workers, threads, device, draft)")
    changed += [f"systems/{system}.yaml's tuning.benchmarks.{b}"
                for b in sorted(kept_benchmarks)
                if (before.get("tuning") or {}).get("benchmarks", {}).get(b)
                != doc["tuning"]["benchmarks"].get(b)]
    if changed:
        raise SubmissionError(
            f"{', '.join(changed)} changed since the results kept in {final} were run "
            f"(systems/{system}.yaml and the suite's code must be the ones they ran with). "
            f"Re-run every benchmark with REPLACE=1 (--replace), or use another SUBMITTER")
    return False


def _kept_patch(final: Path) -> str | None:
    try:
        return json.loads((final / "code/code.json").read_text())["files"].get("patch.diff")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _swap_in(staging: Path, final: Path, system: str, replace: bool) -> None:
    """Move this system's results into the submission: each benchmark x scenario result
    whole (one rename each), keeping the results of the others unless `replace`."""
    final.mkdir(parents=True, exist_ok=True)
    parts = [Path("systems") / f"{system}.json", Path("code")]
    if replace or not (final / "results" / system).is_dir():
        parts.insert(0, Path("results") / system)
    else:
        parts[:0] = [p.relative_to(staging) for p in
                     sorted((staging / "results" / system).glob("*/*")) if p.is_dir()]
    for rel in parts:
        src, dst = staging / rel, final / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        trash = dst.with_name(f".old-{dst.name}-{os.getpid()}")
        if dst.exists():
            dst.rename(trash)
        src.rename(dst)
        if trash.exists():
            shutil.rmtree(trash) if trash.is_dir() else trash.unlink()


def _update_index(final: Path, system: str, profile, git: dict, created: str,
                  replace: bool = True) -> None:
    """submission.json's entry for the system. A merged re-run keeps the first run's date:
    the checker's G312 holds every run to start after it (kept results started earlier)."""
    index_path = final / "submission.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError):
        index = {"schema_version": 1, "systems": {}}
    kept = index.get("systems", {}).get(system)
    if not replace and isinstance(kept, dict) and isinstance(kept.get("created"), str):
        created = min(created, kept["created"])
    index["systems"][system] = {"profile": profile.name, "eligible": profile.eligible,
                                "created": created, "commit": git["commit"],
                                "dirty": git["dirty"]}
    tmp = index_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    tmp.replace(index_path)


def _print_summary(rows, profile) -> None:
    from rich.table import Table
    t = Table(title=f"Submission summary (profile {profile.name}"
                    f"{'' if profile.eligible else ', NOT leaderboard-eligible'})")
    for col in ("benchmark", "scenario", "metric", "value", "LoadGen", "quality", "target",
                "verdict"):
        t.add_column(col)
    for bname, scen, perf, acc in rows:
        perf = perf or {"metric": "-", "value": None, "validity": None}  # a split's accuracy row
        v = perf["value"]
        t.add_row(bname, scen, perf["metric"], f"{v:.2f}" if isinstance(v, (int, float)) else "-",
                  perf["validity"] or "-", f"{acc['metric']} {acc[acc['metric']]:.4f}", f"{acc['target']:.4f}",
                  "PASS" if acc["passed"] else "FAIL")
    console().print(t)


def _user() -> str:
    try:
        import getpass
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "student"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write a submission in the MLPerf layout.")
    ap.add_argument("--system", default="cpu", help="systems/<name>.yaml to declare")
    ap.add_argument("--profile", default="official", choices=sorted(load_rules().profiles),
                    help="rules.yaml's profile: official, or smoke (quick, never eligible)")
    ap.add_argument("--benchmarks", default="",
                    help="comma-separated benchmarks (default: every benchmark of rules.yaml)")
    ap.add_argument("--scenarios", default="Offline,Server",
                    help=f"comma-separated, from {', '.join(SCENARIOS)}")
    ap.add_argument("--submitter", default=os.environ.get("SUBMITTER") or _user(),
                    help="submitter name (results/<division>/<submitter>; default: your user "
                         "name)")
    ap.add_argument("--as-reference", action="store_true",
                    help="allow --submitter reference: regenerate the committed reference "
                         "submission")
    ap.add_argument("--replace", action="store_true",
                    help="drop the system's earlier results in this submission instead of "
                         "keeping those of the benchmarks and scenarios not re-run")
    ap.add_argument("--division", choices=["closed", "open"], default="closed",
                    help="closed requires the reference checkpoint")
    ap.add_argument("--checkpoint", type=Path, default=None, help="open division: your checkpoint")
    ap.add_argument("--out", type=Path, default=ROOT / "results", help="results root")
    ap.add_argument("--allow-mismatch", action="store_true",
                    help="run even if the declaration contradicts the machine (recorded)")
    ap.add_argument("--compress-traces", action="store_true",
                    help="store agent traces gzip-compressed (agent_trace.jsonl.gz; the "
                         "checker reads both; the committed reference submission uses it)")
    args = ap.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s) {', '.join(bad)}; choose from {', '.join(SCENARIOS)}")
    from reference import attention  # here: it imports torch, which this parent needs not

    def terminated(signum, frame):  # `kill` or a CI timeout: clean up as Ctrl-C does
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminated)
    try:
        attention.mode()  # a mistyped NANO_ATTENTION is one line here, not a failed run
        path = make_submission(args.system, args.profile,
                               [b for b in args.benchmarks.split(",") if b], scenarios,
                               args.out, args.submitter, args.division, args.allow_mismatch,
                               args.checkpoint, args.compress_traces, args.as_reference,
                               args.replace)
    except (SubmissionError, DeclarationError, RulesError, attention.KernelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunError as err:
        print(f"error: a LoadGen run failed, no submission was written.\n{err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no submission was written", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
