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
has finished, so an interrupted or failed run leaves nothing that looks complete. A re-run
swaps in each benchmark x scenario result whole and keeps the others (--replace drops them).
Smoke results are marked not eligible.

The package: plan.py (the runs, their settings and Server rates), run.py (each LoadGen run,
re-runs, scoring, progress), write.py (result files, the index, the swap into place); this
module checks the inputs, drives the three and parses the command line.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from loadgen_harness.codepack import CodeError, write_code
from loadgen_harness.logs import read_detail
from loadgen_harness.runner import RunError
from loadgen_harness.submission.plan import (RunPlan, ServerOffer, SubmissionError,  # noqa: F401
                                             audit_settings, loadgen_settings,
                                             measured_offline, plan_runs, server_advice,
                                             suggested_server_qps)
from loadgen_harness.submission.run import Progress, console, run_plan
from loadgen_harness.submission.write import (compress_all_traces, git_state,  # noqa: F401
                                              must_replace, swap_in, update_index,
                                              write_result_files)
from loadgen_harness.system import (SYSTEMS_DIR, DeclarationError, load_system, mismatches,
                                     probe, tuning_problems)
from reference.hashing import file_sha256
from reference.rules import ROOT, SCENARIOS, RulesError, load_rules

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REFERENCE = "reference"  # the committed reference submission's submitter name



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
    replace = replace or must_replace(final, system, profile, doc, replace, git)
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
                        measured_offline(results_dir / plan.benchmark)))
                    offer.apply(plan)
                    progress.replan(plans)
                run_plan(plan, rules, profile, tuning, results_dir, ckpts, calibrated, progress,
                          offers.get(plan.benchmark))
        for bname in benchmarks:
            for scen in scenarios:
                summary_rows += write_result_files(
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
        swap_in(staging, final, system, replace)
        update_index(final, system, profile, git, created, replace)
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
                  perf["validity"] or "-", f"{acc['metric']} {acc[acc['metric']]:.4f}",
                  f"{acc['target']:.4f}",
                  "PASS" if acc["passed"] else "FAIL")
    console().print(t)


def _user() -> str:
    try:
        import getpass
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "student"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadgen_harness.submission",
                                 description="Write a submission in the MLPerf layout.")
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
