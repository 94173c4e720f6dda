"""The files of a submission once its runs exist: each result's measurements.json, user.conf
and README.md, the index (submission.json), and the swap of the finished staging directory into
place (each benchmark x scenario result whole, keeping the others unless asked to replace)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from loadgen_harness.atomic import swap_path
from loadgen_harness.codepack import CodeError, base_commit, sha256, working_patch
from loadgen_harness.logs import read_detail
from loadgen_harness.submission.plan import ServerOffer, SubmissionError, user_conf
from reference.hashing import file_sha256
from reference.rules import ROOT


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


def write_result_files(sdir: Path, rules, profile, plans, bname: str, scen: str, *, system,
                        division, submitter, created, git, checkpoint_sha256,
                        calibrated, offer: ServerOffer | None = None) -> list[tuple]:
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
    """Every agent_trace.jsonl under root as agent_trace.jsonl.gz (byte-for-byte
    reproducible: no name, no time stamp); the checker reads either
    (loadgen_harness.untrusted.tree.COMPRESSIBLE)."""
    for path in sorted(root.rglob("agent_trace.jsonl")):
        gz = path.with_name(path.name + ".gz")
        with open(gz, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                  mtime=0, compresslevel=9) as f:
            f.write(path.read_bytes())
        path.unlink()


def must_replace(final: Path, system: str, profile, doc: dict, replace: bool,
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
            kept_patch(final) != git.get("patch_sha256"):
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


def kept_patch(final: Path) -> str | None:
    try:
        return json.loads((final / "code/code.json").read_text())["files"].get("patch.diff")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def swap_in(staging: Path, final: Path, system: str, replace: bool) -> None:
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
        swap_path(src, dst)


def update_index(final: Path, system: str, profile, git: dict, created: str,
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
