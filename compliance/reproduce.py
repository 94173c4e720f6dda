"""`compliance reproduce`: re-run a submission's code on this machine and compare.

    python -m compliance reproduce results/closed/alice --benchmark nano-codegen \\
        --scenario Offline --profile smoke --json repro.json
    python -m compliance reproduce alice.tar.gz --allow-code     # a patched suite

No log proves a timing; a re-run does. This rebuilds the code a submission names in a
scratch worktree (its suite commit, its patch, its system file: `code/`, issue 33), runs
`make submission`'s harness there for the chosen benchmarks and scenarios, checks that run
with the checker, and compares it with the submitted figures: the answers must be identical
(the same code, weights and greedy decoding) and the rate within rules.yaml's
checker.reproduction_min_ratio. The record (figures, ratio, machine probe, seeds, code hashes)
goes to `<submission>.reproduction.json` beside the submission (never inside it: a student
writes everything inside) and to --json.

Threat model (rules.md section 10): a patch is a student's code. It runs only with
--allow-code, and then as an unprivileged user (nobody), in a new network namespace (no
network), under CPU-time, process-count and file-size limits, in a scratch tree that is
deleted afterwards. A submission whose patch touches only systems/*.yaml runs the suite's own
code and needs no flag. What this does not do: isolate the file system beyond Unix
permissions (a container or VM per reproduction is the next step for a course cluster).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from loadgen_harness.codepack import (CodeError, discard, materialise, patch_paths, sha256,
                                      verify_code)
from reference.rules import SCENARIOS, load_rules

SCHEMA_VERSION = 1
REPRODUCER = "reproduction"  # the submitter name of the re-run


class ReproduceError(Exception):
    """Why a submission cannot be reproduced (one line for the user)."""


def _bundle(sub: Path) -> tuple[dict, bytes, bytes | None]:
    """code.json, the system file's bytes and the patch (None: clean) of a submission."""
    try:
        doc = json.loads((sub / "code/code.json").read_text())
    except (OSError, ValueError) as e:
        raise ReproduceError(f"{sub} carries no readable code/code.json ({e}); a submission "
                             "made before issue 33 cannot be rebuilt") from None

    def read(name):
        p = sub / "code" / name
        return p.read_bytes() if p.is_file() and not p.is_symlink() else None

    problems = verify_code(doc, read)
    if problems:
        raise ReproduceError("its code bundle is not intact: " +
                             "; ".join(f"{f}: {w} ({x})" for f, w, x in problems))
    return doc, read("system.yaml"), read("patch.diff") if doc.get("dirty") else None


def _pairs(sub: Path, system: str, benchmark: str | None, scenario: str | None):
    base = sub / "results" / system
    found = sorted((b.name, s.name) for b in base.iterdir() if b.is_dir()
                   for s in b.iterdir() if s.is_dir()) if base.is_dir() else []
    chosen = [(b, s) for b, s in found if (benchmark in (None, b)) and (scenario in (None, s))]
    if not chosen:
        raise ReproduceError(f"no result for {benchmark or 'any benchmark'} "
                             f"{scenario or 'any scenario'} in {base} "
                             f"(it holds: {', '.join(f'{b} {s}' for b, s in found) or 'none'})")
    return chosen


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost directory above `path` that other users cannot enter (e.g. /root, mode
    0700, holding the interpreter), or None."""
    for parent in reversed(path.parents):
        try:
            if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
                return parent
        except OSError:
            return None
    return None


def _sandboxed(cmd: list[str], tree: Path) -> list[str]:
    """The command as untrusted code (rules.md, reproduction): the user nobody, a new network
    namespace (no network) and mount namespace, CPU-time, process and file-size limits. When
    the interpreter sits in a directory nobody may enter (pyenv under /root), that directory
    is replaced, in the new mount namespace only, by an empty one holding just the
    interpreter's prefix (read-only): nobody can run Python and sees nothing else of it."""
    import shlex
    if os.geteuid() != 0:
        raise ReproduceError("--allow-code runs the patch as the user nobody, which needs root "
                             "(run reproduce as root, or inside a container)")
    for tool in ("unshare", "setpriv", "prlimit", "mount"):
        if shutil.which(tool) is None:
            raise ReproduceError(f"--allow-code needs {tool} (util-linux)")
    subprocess.run(["chown", "-R", "nobody:nogroup", str(tree)], check=True)
    prefix = Path(sys.base_prefix).resolve()
    mounts = []
    closed = _closed_ancestor(prefix)
    if closed is not None:
        stage = tree / ".interpreter"
        stage.mkdir()
        q = shlex.quote
        mounts = [f"mount --bind {q(str(prefix))} {q(str(stage))}",
                  f"mount -o remount,bind,ro {q(str(stage))}",
                  f"mount -t tmpfs -o mode=0755,size=1m tmpfs {q(str(closed))}",
                  f"mkdir -p {q(str(prefix))}",
                  f"mount --bind {q(str(stage))} {q(str(prefix))}"]
    inner = shlex.join(["prlimit", "--nproc=4096", "--fsize=4294967296", "--cpu=36000", "--",
                        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "--", *cmd])
    script = " && ".join([*mounts, f"exec {inner}"])
    return ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c",
            script]


def _answers(run: Path) -> dict[int, str]:
    """qsl_idx -> answer of an accuracy run's LoadGen log (first response of each)."""
    try:
        entries = json.loads((run / "mlperf_log_accuracy.json").read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for e in entries if isinstance(entries, list) else []:
        try:
            out.setdefault(int(e["qsl_idx"]), bytes.fromhex(e["data"]).decode("utf-8", "replace"))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _value(result: Path) -> tuple[float | None, str | None]:
    try:
        perf = json.loads((result / "measurements.json").read_text())["performance"]
        return float(perf["value"]), perf.get("metric")
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def _not_judged(f) -> bool:
    return f.rule == "L106" or (f.rule == "L101" and "has no" in f.message
                                and f.file.count("/") == 3)


def reproduce(sub: Path, benchmark: str | None = None, scenario: str | None = None,
              profile: str = "smoke", allow_code: bool = False, timeout_s: float = 7200,
              log=print) -> dict:
    """Re-run the submission's code here; the reproduction record."""
    from compliance.check import check_path
    from loadgen_harness.system import probe
    rules = load_rules()
    if profile not in rules.profiles:
        raise ReproduceError(f"unknown profile {profile!r} (known: {', '.join(rules.profiles)})")
    doc, system_yaml, patch = _bundle(sub)
    system = doc.get("system")
    if not isinstance(system, str) or not (sub / "systems" / f"{system}.json").is_file():
        raise ReproduceError(f"code/code.json names system {system!r}, which has no declaration")
    pairs = _pairs(sub, system, benchmark, scenario)
    touched = patch_paths(patch) if patch else []
    suite_only = all(p.startswith("systems/") and p.endswith(".yaml") for p in touched)
    if patch and not suite_only and not allow_code:
        raise ReproduceError(
            f"the submission patches the suite's code ({len(touched)} files, e.g. "
            f"{', '.join(touched[:3])}): it is untrusted code, run only with --allow-code "
            "(as nobody, without network, under limits)")
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    scratch = Path(tempfile.mkdtemp(prefix="reproduce-"))
    tree = scratch / "tree"
    try:
        materialise(doc["suite_commit"], patch, tree)
        (tree / "systems" / f"{system}.yaml").write_bytes(system_yaml)
        out = scratch / "out"
        out.mkdir()
        cmd = [sys.executable, "-m", "loadgen_harness.submission", "--system", system,
               "--profile", profile, "--benchmarks", ",".join(sorted({b for b, _ in pairs})),
               "--scenarios", ",".join(s for s in SCENARIOS if s in {s for _, s in pairs}),
               "--submitter", REPRODUCER, "--out", str(out), "--allow-mismatch"]
        if patch and not suite_only:
            cmd = _sandboxed(cmd, scratch)
        env = {k: v for k, v in os.environ.items() if k not in ("SUBMITTER",)}
        env["HOME"] = str(scratch)  # caches (torch, matplotlib) in the scratch tree
        env["PYTHONPATH"] = str(tree)  # the scratch tree's packages, not this checkout's
        # git in the scratch worktree (the run names its code) as another user than the
        # repository's owner
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory",
                   GIT_CONFIG_VALUE_0="*")
        log(f"reproducing {', '.join(f'{b} {s}' for b, s in pairs)} of {sub} "
            f"(commit {doc['suite_commit'][:12]}{', patched' if patch else ''}, profile "
            f"{profile}) ...")
        try:
            run = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                                 timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ReproduceError(f"the re-run took over {timeout_s:.0f} s") from None
        if run.returncode != 0:
            tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
            raise ReproduceError("the re-run failed: " + " | ".join(tail))
        rep_root = out / "closed" / REPRODUCER
        if not rep_root.is_dir():
            rep_root = next((out / d / REPRODUCER for d in ("open",)
                             if (out / d / REPRODUCER).is_dir()), rep_root)
        report = check_path(rep_root, profile, rules=rules)
        # the re-run covers only the chosen results, and its own code bundle is not in
        # question (an older commit writes none): those findings do not judge the figures
        judged = [f for f in report.findings if getattr(f.severity, "value", f.severity) ==
                  "error" and not _not_judged(f)]
        results = []
        min_ratio = float(rules.checker.get("reproduction_min_ratio", 0.85))
        for b, s in pairs:
            mine, theirs = rep_root / "results" / system / b / s, sub / "results" / system / b / s
            submitted, metric = _value(theirs)
            reproduced, _ = _value(mine)
            lower_better = s == "SingleStream"
            ratio = None
            if submitted and reproduced:
                ratio = round(submitted / reproduced if lower_better else reproduced / submitted, 4)
            a_mine, a_theirs = _answers(mine / "accuracy"), _answers(theirs / "accuracy")
            common = sorted(set(a_mine) & set(a_theirs))
            same = sum(a_mine[i] == a_theirs[i] for i in common)
            ok = bool(common) and same == len(common) and ratio is not None and ratio >= min_ratio
            results.append({"benchmark": b, "scenario": s, "metric": metric,
                            "submitted": submitted, "reproduced": reproduced, "ratio": ratio,
                            "answers_compared": len(common), "answers_identical": same,
                            "reproduced_ok": ok})
        record = {
            "schema_version": SCHEMA_VERSION, "created": created, "submission": str(sub),
            "profile": profile, "seeds": rules.official_seeds,
            "code": {"suite_commit": doc["suite_commit"], "dirty": bool(patch),
                     "patch_sha256": sha256(patch) if patch else None,
                     "system_sha256": sha256(system_yaml), "patched_code": bool(patch)
                     and not suite_only},
            "machine": probe(), "min_ratio": min_ratio,
            "check": {"valid": not judged, "findings": sorted({f.rule for f in judged}),
                      "not_judged": sorted({f.rule for f in report.findings
                                            if _not_judged(f)})},
            "results": results,
            "verdict": "reproduced" if not judged and all(r["reproduced_ok"] for r in results)
            else "not reproduced"}
        return record
    except CodeError as e:
        raise ReproduceError(str(e)) from None
    finally:
        discard(tree)
        shutil.rmtree(scratch, ignore_errors=True)


def record_path(sub: Path) -> Path:
    """Where a submission's reproduction record lives: beside it, never inside."""
    name = sub.name[:-len("".join(sub.suffixes))] if sub.is_file() else sub.name
    return sub.parent / f"{name}.reproduction.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compliance reproduce",
                                 description="Re-run a submission's code here and compare.")
    ap.add_argument("path", type=Path, help="a submission directory or archive")
    ap.add_argument("--benchmark", default=None, help="one benchmark (default: every one)")
    ap.add_argument("--scenario", default=None, choices=SCENARIOS,
                    help="one scenario (default: every one)")
    ap.add_argument("--profile", default="smoke", choices=["smoke", "official"],
                    help="the profile of the re-run (default smoke: minutes, not a full run)")
    ap.add_argument("--allow-code", action="store_true",
                    help="run a submission that patches the suite's code (untrusted: as "
                         "nobody, no network, under limits)")
    ap.add_argument("--json", type=Path, default=None, help="also write the record here")
    ap.add_argument("--timeout", type=float, default=7200, help="seconds for the re-run")
    args = ap.parse_args(argv)
    sub = args.path
    from compliance.archive import extract, is_archive
    tmp = None
    try:
        if not sub.exists():
            raise ReproduceError(f"{sub} does not exist")
        if sub.is_file() and is_archive(sub):
            tmp = Path(tempfile.mkdtemp(prefix="reproduce-in-"))
            problems = extract(sub, tmp)
            if problems:
                raise ReproduceError(f"{sub}: {problems[0]}")
            from compliance.check import find_root
            root = find_root(tmp)
            if root is None:
                raise ReproduceError(f"{sub} holds no submission")
        elif sub.is_dir():
            root = sub
        else:
            raise ReproduceError(f"{sub} is neither a submission directory nor an archive")
        record = reproduce(root, args.benchmark, args.scenario, args.profile, args.allow_code,
                           args.timeout, log=lambda m: print(m, file=sys.stderr))
        record["submission"] = str(sub)
    except ReproduceError as e:
        print(f"error: cannot reproduce {sub}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no reproduction record written", file=sys.stderr)
        return 130
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    targets = write_record(sub, record, args.json)
    for r in record["results"]:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        print(f"{r['benchmark']} {r['scenario']}: submitted {r['submitted']}, reproduced "
              f"{r['reproduced']} ({r['metric']}), ratio {ratio}; answers identical "
              f"{r['answers_identical']}/{r['answers_compared']}"
              + ("" if r["reproduced_ok"] else "  NOT REPRODUCED"))
    print(f"{record['verdict']}: record written to {', '.join(map(str, targets))}")
    return 0 if record["verdict"] == "reproduced" else 1


if __name__ == "__main__":
    sys.exit(main())


# --- on a leaderboard -----------------------------------------------------------------------

def _code_ids(sub: Path) -> tuple | None:
    """The code a submission names now (a record of other code is stale)."""
    try:
        files = json.loads((sub / "code/code.json").read_text())["files"]
        return files.get("system.yaml"), files.get("patch.diff")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(sub: Path, record: dict, extra: Path | None = None) -> list[Path]:
    """Write a record beside the submission, merged with an earlier one of the same code
    (one record holds every benchmark x scenario reproduced); atomically."""
    target = record_path(sub)
    try:
        old = json.loads(target.read_text())
        same = old.get("code", {}).get("system_sha256") == record["code"]["system_sha256"] and \
            old.get("code", {}).get("patch_sha256") == record["code"]["patch_sha256"]
    except (OSError, ValueError, AttributeError):
        old, same = None, False
    if same:
        mine = {(r["benchmark"], r["scenario"]) for r in record["results"]}
        record = {**record, "results": [r for r in old.get("results", [])
                                        if (r.get("benchmark"), r.get("scenario")) not in mine]
                  + record["results"]}
        record["verdict"] = "reproduced" if record["check"]["valid"] and \
            all(r.get("reproduced_ok") for r in record["results"]) else "not reproduced"
    text = json.dumps(record, indent=1) + "\n"
    out = [target] + ([extra] if extra else [])
    for t in out:
        part = t.with_name(t.name + ".part")
        part.write_text(text)
        part.replace(t)
    return out


def read_record(sub: Path) -> dict | None:
    """The entry's reproduction record, if one exists for the code it names now."""
    try:
        rec = json.loads(record_path(sub).read_text())
        code = rec["code"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ids = _code_ids(sub) if sub.is_dir() else None
    if ids is not None and (code.get("system_sha256"), code.get("patch_sha256")) != ids:
        return None  # the entry changed since: the record is of other code
    return rec


def _reproduce_task(path: str, benchmark: str, scenario: str, profile: str,
                    allow_code: bool) -> dict:
    """One reproduction (a Ray task or a local call): the record, or why there is none."""
    sub = Path(path)
    try:
        record = reproduce(sub, benchmark, scenario, profile, allow_code, log=lambda m: None)
    except ReproduceError as e:
        return {"error": str(e), "benchmark": benchmark, "scenario": scenario}
    write_record(sub, record)
    return record


def attach_reproductions(data: dict, folder: Path, reproduce_n: int = 0,
                         rank: str = "submitted", cluster: str | None = None,
                         nodes: Path | None = None, profile: str = "smoke",
                         allow_code: bool = False, progress=None) -> None:
    """Give every board row its reproduction (ratio and date, from the record beside the
    entry); first reproduce the top `reproduce_n` of each board and every row flagged B701
    (locally, or as Ray tasks asking for each system's resources); with rank='reproduced',
    rank by the reproduced figures (rows without one below, unranked)."""
    from compliance.cluster import load_node_types, resources_for, run_tasks
    from compliance.course import course_entries, entry_of
    paths = {entry_of(p): p for p in course_entries(folder) if p.is_dir()}
    todo = []
    for key, rows in data["boards"].items():
        bench, scen, _ = key.split(" / ")
        ranked = [r for r in rows if r.get("rank")]
        pick = {r["submission"] for r in ranked[:max(reproduce_n, 0)]} | \
            ({r["submission"] for r in ranked if "B701" in (r.get("notes") or "")}
             if reproduce_n > 0 else set())
        todo += [(name, bench, scen) for name in sorted(pick) if name in paths]
    failures = {}
    if todo:
        calls = [(str(paths[n]), b, s, profile, allow_code) for n, b, s in todo]
        if cluster:
            types = load_node_types(nodes) if nodes else None
            res = []
            for n, _, _ in todo:
                try:
                    decl = json.loads(next((paths[n] / "systems").glob("*.json")).read_text())
                    res.append(resources_for(decl.get("declaration", {}), types))
                except (OSError, ValueError, StopIteration, AttributeError):
                    res.append({"num_cpus": 1})
            outs = run_tasks(cluster, _reproduce_task, calls, res, progress,
                             [f"reproducing {n} {b} {s}" for n, b, s in todo])
        else:
            outs = []
            for call, (n, b, s) in zip(calls, todo):
                outs.append(_reproduce_task(*call))
                if progress:
                    progress(f"reproduced {n} {b} {s}")
        failures = {(n, b, s): o["error"] for (n, b, s), o in zip(todo, outs) if "error" in o}
    for key, rows in data["boards"].items():
        bench, scen, _ = key.split(" / ")
        for r in rows:
            rec = read_record(paths[r["submission"]]) if r["submission"] in paths else None
            res = next((x for x in (rec or {}).get("results", [])
                        if x.get("benchmark") == bench and x.get("scenario") == scen), None)
            fail = failures.get((r["submission"], bench, scen))
            if res:
                r["reproduction"] = {**res, "created": rec.get("created"),
                                     "verdict": rec.get("verdict")}
                ratio = res.get("ratio")
                if isinstance(r.get("basis"), dict) and res.get("reproduced_ok"):
                    r["basis"] = {**r["basis"], "timing": "reproduced: a re-run of the "
                                  "submission's code on the checker's machine"}
                r["reproduced"] = (f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "?") \
                    + f" ({str(rec.get('created', ''))[:10]})" \
                    + ("" if res.get("reproduced_ok") else " NOT REPRODUCED")
            else:
                r["reproduction"] = {"error": fail} if fail else None
                r["reproduced"] = f"failed: {fail}" if fail else "unreproduced"
    if rank == "reproduced":
        for key, rows in data["boards"].items():
            lower = data["references"].get(key, {}).get("lower_is_better", False)
            got = lambda r: (r.get("reproduction") or {}).get("reproduced")  # noqa: E731
            rows.sort(key=lambda r: (not r.get("baseline"), got(r) is None,
                                     (got(r) if lower else -got(r)) if got(r) is not None
                                     else 0, r["submission"]))
            n = 0
            for r in rows:
                if r.get("baseline") or got(r) is None:
                    r["rank"] = None
                else:
                    n += 1
                    r["rank"] = n
        data["ranked_by"] = "reproduced"
    else:
        data["ranked_by"] = "submitted"
