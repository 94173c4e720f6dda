"""A course leaderboard: validate every submission in a folder, rank the valid ones.

    python -m compliance leaderboard submissions/ --out board/

Writes board/leaderboard.{md,csv,json} and board/index.html (one self-contained page, no
scripts, every submission-supplied string escaped; a bar chart per board drawn by matplotlib
as inline SVG, its text drawn as paths). Ranks are per benchmark, scenario and division by
the scenario's metric (Offline and Server: higher is better; SingleStream p90 latency: lower
is better). Each row carries its Server p99 latency (LoadGen's, from the performance run's
detail log) and its speed-up over the reference: the entry named `reference` on the same
board when there is one, else the reference submission's figure in rules.yaml
(checker.reference_results). Invalid submissions are listed with their reasons.
"""
from __future__ import annotations

import csv
import html
import io
import json
import re
import tempfile
from pathlib import Path

from compliance.archive import extract, is_archive
from compliance.check import check_path, find_root
from compliance.checks.identity import normalise_name
from compliance.course import course_entries, entry_of
from loadgen_harness.untrusted.safe import csv_cell, json_value, markdown, text
from loadgen_harness.untrusted.tree import Tree
from reference.rules import load_rules

NEAR_IDENTICAL = 0.1   # share of a run's episodes (sample and every timing) seen in another entry
REFERENCE_ENTRY = "reference"  # the official reference submission's submitter name
CHART_ROWS = 30        # bars drawn per board chart (the table lists every entry)


REFERENCE_DIR = Path(__file__).resolve().parents[1] / "results/closed/reference"


def _evidence_of(path: Path) -> dict[str, str]:
    """A submission directory's run evidence (check._evidence: SHA-256 of each run's detail
    log and trace), without checking it; {} when there is none."""
    from compliance.check import _evidence
    from compliance.context import Ctx
    root = find_root(path) if path.is_dir() and not path.is_symlink() else None
    if root is None:
        return {}
    ctx = Ctx(Tree(root), load_rules(), "official")
    try:
        return _evidence(ctx)
    finally:
        ctx.close()


def reference_evidence() -> dict:
    """The committed reference submission (REFERENCE_DIR), by content: {"evidence": its run
    hashes, "prints": its episode prints, "profile": its profile}. The baseline on a board is
    the entry named `reference` whose runs are exactly these, never the name alone."""
    from compliance.check import _episode_prints
    from compliance.context import Ctx
    key = str(REFERENCE_DIR)
    if key not in _REFERENCE_CACHE:
        root = find_root(REFERENCE_DIR) if REFERENCE_DIR.is_dir() else None
        out = {"evidence": set(), "prints": set(), "profile": None}
        if root is not None:
            ctx = Ctx(Tree(root), load_rules(), "official")
            try:
                out["evidence"] = set(_evidence_of(root).values())
                out["prints"] = set(_episode_prints(ctx))
            finally:
                ctx.close()
            index, _ = Tree(root).json("submission.json")
            profiles = {s.get("profile") for s in (index or {}).get("systems", {}).values()
                        if isinstance(s, dict)} if isinstance(index, dict) else set()
            out["profile"] = profiles.pop() if len(profiles) == 1 else None
        _REFERENCE_CACHE[key] = out
    return _REFERENCE_CACHE[key]


_REFERENCE_CACHE: dict[str, dict] = {}


def _copy_groups(names: list[str], results: list[dict], baseline: dict,
                 ref_name: str | None) -> dict[str, tuple[list[str], bool]]:
    """B702: {entry: (every member of its copy group, sorted; whether the group copies the
    committed reference)}. Entries are linked when they share a run's evidence (a detail log
    or trace, byte for byte) or a tenth of a run's episodes (NEAR_IDENTICAL); the baseline is
    never a member, but sharing with it (or with the committed reference when it is not on the
    board) puts a group among the reference's copies. Only valid entries are compared."""
    REF = "\0reference"  # the committed reference, a member that is never listed
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)
    evidence_owner = {h: REF for h in baseline["evidence"]}
    print_owner = {h: REF for h in baseline["prints"]}
    for name, res in zip(names, results):
        if not res["valid"] or name == ref_name:
            continue
        for h in res["meta"].get("evidence", {}).values():
            if evidence_owner.setdefault(h, name) != name:
                union(name, evidence_owner[h])
        prints = res["meta"].get("episode_prints", [])
        shared: dict[str, int] = {}
        for h in prints:
            owner = print_owner.setdefault(h, name)
            if owner != name:
                shared[owner] = shared.get(owner, 0) + 1
        for other, k in shared.items():
            if k >= max(3, NEAR_IDENTICAL * len(prints)):  # near-identical: episodes copied
                union(name, other)
    members: dict[str, list[str]] = {}
    for a in parent:
        members.setdefault(find(a), []).append(a)
    out = {}
    for group in members.values():
        if len(group) < 2:
            continue
        of_ref = REF in group
        listed = sorted(m for m in group if m != REF)
        for m in listed:
            out[m] = (listed, of_ref)
    return out


COPY_RULES = ("T613",)  # check-level "this run is the committed reference's" (checks/copies.py)


def _copy_only(res: dict) -> bool:
    """Whether a check's only errors are COPY_RULES findings."""
    errs = [f for f in res["findings"] if f["severity"] == "error"]
    return bool(errs) and all(f["rule"] in COPY_RULES for f in errs)


def _plain(f: dict) -> dict:
    """A finding as the board shows it (every field present)."""
    return {k: f.get(k) or "" for k in ("rule", "severity", "file", "location", "message",
                                         "expected", "found", "hint")} | \
        {"severity": f.get("severity") or "error"}


def _p99s_in(root: Path) -> dict[str, float]:
    """{"system/benchmark": Server p99 in ms} from each Server performance run's detail log
    (LoadGen's figure; rule G311 ties it to the per-query latencies)."""
    tree, out = Tree(root), {}
    for system in tree.listdir("results"):
        for bench in tree.listdir(f"results/{system}"):
            d, _ = tree.mllog(f"results/{system}/{bench}/Server/performance/run_1/"
                              "mlperf_log_detail.txt")
            v = (d or {}).get("result_99.00_percentile_latency_ns", (None,))[0]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
                out[f"{system}/{bench}"] = v / 1e6
    return out


def _server_p99s(path: Path) -> dict[str, float]:
    """Server p99s of an entry, a directory or an archive (opened again, as safely as the
    check opens it); {} when there is none to read."""
    if is_archive(path) and path.is_file():
        with tempfile.TemporaryDirectory(prefix="nano-board-") as tmp:
            extract(path, Path(tmp))
            root = find_root(Path(tmp))
            return _p99s_in(root) if root else {}
    root = find_root(path) if path.is_dir() and not path.is_symlink() else None
    return _p99s_in(root) if root else {}


def _check_one(path: str, profile: str, budget_s: float, replay: int = 0,
               replay_seed: int | None = None, parallel: bool | None = None) -> dict:
    """Check one entry in a worker process: the report as plain data (never raises). Several
    workers already hold the cores: they pass parallel=False (no fork per check)."""
    try:
        report = check_path(Path(path), profile, sandbox_budget_s=budget_s, replay=replay,
                            replay_seed=replay_seed, parallel=parallel)
        p99s = _server_p99s(Path(path)) if report.valid else {}
        return {"valid": report.valid, "meta": report.meta, "p99s": p99s,
                "findings": [f.to_dict() for f in report.findings]}
    except Exception as exc:  # a checker bug must not stop the whole folder
        return {"valid": False, "meta": {}, "findings": [{
            "rule": "X901", "severity": "error", "file": "", "location": "", "expected": "",
            "found": "", "hint": "a bug in the checker; please report it",
            "message": f"the check crashed: {type(exc).__name__}: {exc}"}]}


def _check_all(entries: list[Path], profile: str, workers: int, replay: int = 0,
               replay_seed: int | None = None, progress=None,
               cluster: str | None = None) -> list[dict]:
    """Check every entry, `workers` at a time (both cores), within the leaderboard's total
    sandbox budget (rules.yaml checker.max_sandbox_s_leaderboard): each check gets what is
    left, so a folder of hostile submissions costs a bounded time."""
    from concurrent.futures import ProcessPoolExecutor
    rules = load_rules()
    left = float(rules.checker["max_sandbox_s_leaderboard"])
    out: list[dict | None] = [None] * len(entries)
    if cluster and entries:  # one Ray task per entry (compliance/cluster.py), results in order
        from compliance.cluster import run_tasks
        share = max(left, 0.0) / len(entries)
        return run_tasks(cluster, _check_one, [(str(p), profile, share, replay, replay_seed,
                                                False) for p in entries],
                         progress=progress, labels=[p.name for p in entries])
    if workers <= 1 or len(entries) <= 1:
        for i, p in enumerate(entries):
            out[i] = _check_one(str(p), profile, max(left, 0.0), replay, replay_seed)
            left -= out[i]["meta"].get("sandbox_s", 0.0)
            if progress:
                progress(p.name)
        return out
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupt)
    try:
        return _check_pooled(pool, entries, profile, workers, replay, replay_seed, progress,
                             out, left)
    except KeyboardInterrupt:  # Ctrl-C reaches only this process: stop the workers, quietly
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _ignore_interrupt() -> None:
    """In a worker: Ctrl-C is the parent's to handle (no traceback from each worker)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_pooled(pool, entries, profile, workers, replay, replay_seed, progress, out, left):
    """_check_all's parallel half: `workers` checks in flight, each given the budget left."""
    from concurrent.futures.process import BrokenProcessPool
    pending = {}
    queue = list(enumerate(entries))
    while queue or pending:
        while queue and len(pending) < workers:
            i, p = queue.pop(0)
            pending[pool.submit(_check_one, str(p), profile, max(left, 0.0) / workers,
                                replay, replay_seed, False)] = i
        done = next(iter(_wait(pending)))
        i = pending.pop(done)
        try:
            out[i] = done.result()
        except BrokenProcessPool:  # a worker died: the unfinished entries get X901
            died = {"valid": False, "meta": {}, "findings": [{
                "rule": "X901", "severity": "error", "file": "", "location": "",
                "expected": "", "found": "", "hint": "a bug in the checker",
                "message": "the checker's worker process died during this check"}]}
            return [o if o is not None else died for o in out]
        left -= out[i]["meta"].get("sandbox_s", 0.0)
        if progress:
            progress(entries[i].name)
    return out


def _wait(pending):
    from concurrent.futures import FIRST_COMPLETED, wait
    return wait(pending, return_when=FIRST_COMPLETED).done


def _cores(v) -> int | None:
    return v if type(v) is int and v >= 1 else None


def expected_bound(rules, row: dict) -> tuple[float | None, str]:
    """(the expected bound of a result, what it rests on) from rules.yaml: a CPU's is the
    reference's figure per core x min(declared, probed) cores (1 when either is missing) x
    checker.plausibility_max_ratio; a known accelerator's (checker.device_classes) the
    reference's figure x its memory bandwidth / the CPU's x the ratio; (None, why) for an
    accelerator not in the table or a scenario without a reference figure. For a latency
    metric the bound is a floor (the reference's figure divided by the same factor)."""
    from compliance.checks.limits import classify
    c = rules.checker
    ref = c["reference_results"].get(row["benchmark"], {})
    base = ref.get(row["scenario"]) if isinstance(ref, dict) else None
    classes = c.get("device_classes") or {}
    cls, spec = classify(classes, row.get("accelerator"))
    if cls == "cpu" and row.get("probe_accelerators"):
        cls, spec = "unknown", {}  # the probe found accelerators the declaration omits
    if cls == "unknown":
        return None, (f"accelerator {str(row.get('accelerator'))[:40]!r} is not in rules.yaml "
                      "checker.device_classes")
    if not isinstance(base, (int, float)) or base <= 0:
        return None, ""
    if cls == "cpu":
        both = (_cores(row.get("declared_cores")), _cores(row.get("probe_cores")))
        cores = min(both) if None not in both else 1
        scale, basis = cores / max(1, ref.get("cores", 1)), f"{cores} cores"
    else:
        scale = spec.get("memory_bandwidth_gbs", 0) / \
            max(1e-9, classes.get("cpu", {}).get("memory_bandwidth_gbs", 1))
        basis = f"{cls}, {spec.get('memory_bandwidth_gbs')} GB/s"
    factor = max(scale, 1e-9) * c["plausibility_max_ratio"]
    lower = _lower(rules, row["benchmark"], row["scenario"])
    return (base / factor if lower else base * factor), basis


def _plausible(rules, row: dict) -> tuple[bool, str]:
    """(whether a result is within its expected bound, the B701 note when not): above the
    bound (below it for a latency), or on a device without a bound, it needs reproduction."""
    bound, basis = expected_bound(rules, row)
    value = row.get("value")
    if bound is None:
        return (False, f"B701: needs reproduction ({basis})") if basis else (True, "")
    lower = _lower(rules, row["benchmark"], row["scenario"])
    if (value < bound) if lower else (value > bound):
        return False, (f"B701: needs reproduction ({value:.4g} is beyond the expected bound "
                       f"{bound:.4g} for {basis})")
    return True, ""


MAX_FIGURE = 1e15  # as G313: no figure a real run logs comes near it


def _figure_problem(row: dict) -> str | None:
    """Why a row's figure cannot be ranked or drawn (None when it can): every figure is a
    finite number in (0, MAX_FIGURE] before it is compared, divided or plotted."""
    import math
    v = row.get("value")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"no figure ({type(v).__name__})"
    if not math.isfinite(v) or not 0 < v <= MAX_FIGURE:
        return f"the figure {v!r:.30} is not a finite number in (0, {MAX_FIGURE:g}]"
    return None


def collect(folder: Path, profile: str, workers: int = 2, replay: int | None = None,
            replay_seed: int | None = None, progress=None, cluster: str | None = None) -> dict:
    rules = load_rules()
    if replay is None:
        replay = int(rules.checker.get("leaderboard_replay", 0))
    if replay_seed is None:  # one seed per course run, the checker's own randomness
        import secrets
        replay_seed = secrets.randbits(63)
    entries = course_entries(folder)
    names = [entry_of(p) for p in entries]
    baseline = reference_evidence()
    # an entry whose runs are all the committed reference's is checked as the reference is
    # (its own profile): the named one is the board's baseline, any other is a copy of it
    is_ref = [bool(baseline["evidence"]) and p.is_dir() and
              set(_evidence_of(p).values()) == baseline["evidence"] for p in entries]
    results: list[dict] = [{}] * len(entries)
    for want, prof in ((True, baseline["profile"] or profile), (False, profile)):
        idx = [i for i, r in enumerate(is_ref) if r is want]
        for i, res in zip(idx, _check_all([entries[i] for i in idx], prof, workers, replay,
                                          replay_seed, progress, cluster)):
            results[i] = res
    # an entry whose only errors say it copies the committed reference (COPY_RULES) is a copy:
    # flagged with its copy group, not invalid; for the baseline itself they do not apply
    results = [{**res, "valid": True, "copy_of_reference": True} if _copy_only(res) else res
               for res in results]
    boards: dict[str, list[dict]] = {}
    invalid, flagged = [], []
    ref_name = next((n for n, r, res in zip(names, is_ref, results)
                     if r and n == REFERENCE_ENTRY and res["valid"]), None)
    groups = _copy_groups(names, results, baseline, ref_name)
    for name, res in zip(names, results):
        if res.get("copy_of_reference") and name != ref_name and name not in groups:
            groups[name] = ([name], True)
    # identity by normalised name (NFKC, casefold, confusable skeleton): an entry whose
    # results name someone else is refused alone (B704), so it never makes the real one a
    # duplicate; entries that are each their submitter and share one are all refused (B703)
    own = [_is_own(name, res) for name, res in zip(names, results)]
    claims: dict[str, list[str]] = {}
    for name, mine in zip(names, own):
        if mine:
            claims.setdefault(normalise_name(name), []).append(name)
    for p, name, res, mine in zip(entries, names, results, own):
        errors = [f for f in res["findings"] if f["severity"] == "error"
                  and not (res.get("copy_of_reference") and f["rule"] in COPY_RULES)]
        same = claims.get(normalise_name(name), []) if mine else []
        if len(same) > 1:
            errors.insert(0, {"rule": "B703", "message": f"more than one entry for submitter "
                              f"{name!r}: {', '.join(repr(n) for n in same)} (one person's "
                              "name, compared as NFKC, casefold and confusable skeleton)",
                              "file": ""})
        subs = res["meta"].get("submitters", [])
        if res["valid"] and not mine:
            errors.insert(0, {"rule": "B704", "message": f"the results name submitter "
                              f"{', '.join(map(str, subs))}, not the entry's name {name!r}",
                              "file": ""})
        bad = sorted({f"{r.get('benchmark')} {r.get('scenario')}: {why}"
                      for r in res["meta"].get("rows", []) if (why := _figure_problem(r))})
        if res["valid"] and bad:
            errors.insert(0, {"rule": "G313", "message": "a figure the board cannot rank: "
                              + "; ".join(bad)[:300], "file": "",
                              "expected": f"a finite figure in (0, {MAX_FIGURE:g}]"})
        if name == REFERENCE_ENTRY and res["valid"] and name != ref_name:
            errors.insert(0, {"rule": "B704", "message": "the entry is named 'reference' but its "
                              "runs are not the committed reference submission's", "file": "",
                              "expected": f"the runs of {REFERENCE_DIR.name}",
                              "found": "other runs", "hint": "submit under your own name"})
        if errors:
            invalid.append({"submission": name, "n_errors": len(errors),
                            "reasons": [f"{f['rule']}: {f['message']}"
                                        + (f" ({f['file']})" if f.get("file") else "")
                                        for f in errors],
                            "findings": [_plain(f) for f in errors]})
            continue
        if name in groups:
            members, of_ref = groups[name]
            reason = ("B702: a copy of the committed reference submission's runs"
                      if of_ref else "B702: shares run evidence (a detail log, a trace or its "
                      "episodes) with another entry") + \
                f"; copy group: {', '.join(members)}" + \
                (" and the reference" if of_ref else "") + ": identical or near-identical runs"
            b702 = {"rule": "B702", "severity": "error", "message": reason[6:], "file": "",
                    "expected": "runs of your own", "found": "the same runs as "
                    + ", ".join([m for m in members if m != name]
                                + (["the committed reference"] if of_ref else [])),
                    "hint": "run `make submission` yourself; copies are not ranked"}
            flagged.append({"submission": name, "reason": reason, "members": members,
                            "of_reference": of_ref,
                            "findings": [b702] + [_plain(f) for f in res["findings"]]})
            continue
        notes = sorted({f"{f['rule']}: {f['message']}" for f in res["findings"]
                        if f["severity"] == "warning"})
        for row in res["meta"].get("rows", []):
            row_notes = list(notes)
            if row.get("override"):
                row_notes.insert(0, "S202: hardware declaration override (ALLOW_MISMATCH)")
            ok, why = _plausible(rules, row)
            if not ok:
                row_notes.insert(0, why)
            key = f"{row['benchmark']} / {row['scenario']} / {row['division']}"
            p99 = res.get("p99s", {}).get(f"{row['system']}/{row['benchmark']}") \
                if row["scenario"] == "Server" else None
            if name == ref_name:
                row_notes = ["baseline: the committed reference submission (not ranked)"]
            boards.setdefault(key, []).append({"submission": name, **row,
                                               "server_p99_ms": p99,
                                               "baseline": name == ref_name,
                                               "notes": "; ".join(row_notes)})
    references = {}
    for key, rows in boards.items():
        lower = _lower(rules, *key.split(" / ")[:2])
        rows[:] = _one_row_each(rows, lower)
        rows.sort(key=lambda r: (not r["baseline"], r["value"] if lower else -r["value"],
                                 r["submission"]))
        rank = 0
        for r in rows:  # the baseline first and unranked; the competitors ranked from 1
            rank += not r["baseline"]
            r["rank"] = None if r["baseline"] else rank
        references[key] = ref = {**_reference(rules, key, rows), "lower_is_better": lower}
        for r in rows:
            r["speedup"] = _speedup(r.get("value"), ref["value"], lower)
    data = {"profile": profile, "replay_per_run": replay, "replay_seed": replay_seed,
            "boards": dict(sorted(boards.items())), "invalid": invalid,
            "flagged": flagged, "references": dict(sorted(references.items()))}
    _drawable(data)
    return data


def _is_own(name: str, res: dict) -> bool:
    """Whether an entry's results name the submitter the entry is named after (normalised)."""
    subs = res["meta"].get("submitters", [])
    return bool(subs) and {normalise_name(s) for s in subs} == {normalise_name(name)}


def _one_row_each(rows: list[dict], lower: bool) -> list[dict]:
    """One row per submission on a board: a submission with several systems keeps its best
    result, the others named in its notes."""
    best: dict[str, dict] = {}
    others: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: r["value"] if lower else -r["value"]):
        if r["submission"] in best:
            others[r["submission"]].append(str(r.get("system")))
        else:
            best[r["submission"]], others[r["submission"]] = r, []
    for name, rest in others.items():
        if rest:
            r = best[name]
            r["notes"] = "; ".join(filter(None, [r["notes"], "best of its systems (also: "
                                                 + ", ".join(rest)[:200] + ")"]))
    return [r for r in rows if best.get(r["submission"]) is r]


def _drawable(data: dict) -> None:
    """Draw each board's chart once, here: a chart that fails is the failing entry's finding
    (X901: a checker bug; the entry is taken off the board and listed invalid), or the board's
    when no single entry explains it (its chart is left out). The page reuses the drawings."""
    for i, (key, rows) in enumerate(list(data["boards"].items())):
        ref = data["references"].get(key, {})
        err = _try_chart(key, rows, ref, i)
        if err is None:
            continue
        culprits = [r for r in rows if _try_chart(key, [r], ref, i, keep=False) is not None]
        for r in culprits:
            rows.remove(r)
            data["invalid"].append({"submission": r["submission"], "n_errors": 1,
                                    "reasons": [f"X901: the chart of {key} cannot draw this "
                                                f"entry: {err}"],
                                    "findings": [_plain({
                                        "rule": "X901", "message": f"the chart of {key} cannot "
                                        "draw this entry", "found": err,
                                        "hint": "a bug in the checker; please report it"})]})
        if not culprits or _try_chart(key, rows, ref, i) is not None:
            data.setdefault("board_findings", []).append(
                {"rule": "X901", "board": key, "message": f"the chart could not be drawn: {err}"})
            _CHARTS[_chart_key(key, rows, ref, i)] = "<p>chart not drawn (a checker bug: " \
                f"{html.escape(text(err, 200))})</p>"


_CHARTS: dict[tuple, str] = {}  # drawn SVGs by what they show: _drawable draws, to_html reuses


def _chart_key(key, rows, ref, index) -> tuple:
    return (key, index, ref.get("value"), ref.get("lower_is_better", False),
            tuple((r.get("submission"), r.get("rank"), r.get("value"), bool(r.get("baseline")),
                   r.get("metric")) for r in rows))


def _try_chart(key, rows, ref, index, keep=True) -> str | None:
    """Draw a board's chart (kept for the page when `keep`); the error's text if it fails."""
    try:
        svg = _draw_chart(key, rows, ref.get("value"), index, ref.get("lower_is_better", False))
    except Exception as exc:  # a drawing bug: the caller's finding
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    if keep:
        _CHARTS[_chart_key(key, rows, ref, index)] = svg
    return None


def _lower(rules, benchmark: str, scenario: str) -> bool:
    """rules.yaml: whether the scenario's metric ranks lower first."""
    return benchmark in rules.benchmarks and rules.benchmark(benchmark).lower_is_better(scenario)


def _reference(rules, key: str, rows: list[dict]) -> dict:
    """What a board's speed-ups are over: the entry named `reference` on the board, else the
    reference submission's figure in rules.yaml, else nothing."""
    bench, scenario, _ = key.split(" / ")
    entry = next((r for r in rows if r.get("baseline")), None)
    if entry is not None and isinstance(entry.get("value"), (int, float)):
        return {"value": entry["value"], "source": "the baseline row: the committed reference "
                f"submission (the entry {REFERENCE_ENTRY!r}) on this board"}
    ref = rules.checker.get("reference_results", {}).get(bench, {})
    value = ref.get(scenario) if isinstance(ref, dict) else None
    if isinstance(value, (int, float)) and value > 0:
        return {"value": value, "source": "the reference submission's figure in rules.yaml "
                f"(checker.reference_results: results/closed/reference, {ref.get('cores', '?')} "
                "cores; no entry named 'reference' on this board)"}
    return {"value": None, "source": "none (no entry named 'reference' on this board and no "
            "reference figure in rules.yaml for this scenario)"}


def _speedup(value, ref, lower_is_better: bool) -> float | None:
    if not isinstance(value, (int, float)) or not isinstance(ref, (int, float)) or \
            value <= 0 or ref <= 0:
        return None
    return round(ref / value if lower_is_better else value / ref, 3)


COLUMNS = ("rank", "submission", "system", "system_name", "accelerator", "metric", "value",
           "speedup", "server_p99_ms", "quality_metric", "quality", "reproduced", "notes")


def _columns(key: str) -> tuple[str, ...]:
    """A board's columns: the Server p99 only on Server boards (the CSV keeps them all)."""
    return COLUMNS if key.split(" / ")[1] == "Server" else \
        tuple(c for c in COLUMNS if c != "server_p99_ms")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary(data: dict) -> dict:
    """The counts at the top of every output: ranked entries, the baseline, flagged, invalid."""
    rows = [r for rows in data["boards"].values() for r in rows]
    return {"ranked": len({r["submission"] for r in rows if not r.get("baseline")}),
            "baseline": next((r["submission"] for r in rows if r.get("baseline")), None),
            "flagged": len(data.get("flagged", [])), "invalid": len(data["invalid"])}


def summary_line(data: dict) -> str:
    s = summary(data)
    return (f"{s['ranked']} ranked, {s['flagged']} flagged, {s['invalid']} invalid "
            f"(baseline: {'the committed reference' if s['baseline'] else 'none on the board'})")


def to_markdown(data: dict) -> str:
    lines = [f"# Leaderboard (profile {data['profile']})", "", summary_line(data), ""]
    if not data["boards"]:
        lines += ["**No valid entries**: nothing is ranked (see the flagged and invalid "
                  "entries below).", ""]
    for key, rows in data["boards"].items():
        cols = _columns(key)
        ref = data.get("references", {}).get(key, {})
        lines += [f"## {key}", "", f"speedup: over {markdown(ref.get('value'))} "
                  f"({markdown(ref.get('source', 'none'))})", "",
                  "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            cells = [("baseline" if c == "rank" and r.get("baseline") else markdown(r.get(c, "")))
                     for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Flagged for review (not ranked)", ""]
    for fl in data.get("flagged", []):
        lines.append(f"- **{markdown(fl['submission'])}**: {markdown(fl['reason'])}")
    if not data.get("flagged"):
        lines.append("none")
    lines += ["", "## Invalid submissions", ""]
    for inv in data["invalid"]:
        lines.append(f"- **{markdown(inv['submission'])}** ({_count(inv['n_errors'], 'error')}):")
        lines += [f"  - {markdown(x)}" for x in inv["reasons"]]
    if not data["invalid"]:
        lines.append("none")
    return "\n".join(lines) + "\n"


def to_csv(data: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["benchmark", "scenario", "division", *COLUMNS, "baseline"])
    for key, rows in data["boards"].items():
        b, s, d = key.split(" / ")
        for r in rows:
            w.writerow([csv_cell(x) for x in (b, s, d, *[r.get(c, "") for c in COLUMNS],
                                              bool(r.get("baseline")))])
    return buf.getvalue()


def _cell(row: dict, col: str):
    """A row's value for the page: the p99 to 0.1 ms (the JSON and CSV keep it whole)."""
    v = row.get(col)
    if col == "rank" and row.get("baseline"):
        return "baseline"
    return f"{v:.1f}" if col == "server_p99_ms" and isinstance(v, float) else v


_RULE_ID = re.compile(r"\b([LSGQATRBX]\d{3})\b")
CSS = ("body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:78rem}"
       "table{border-collapse:collapse;margin-bottom:1.5rem;width:100%}"
       "th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:left;vertical-align:top;"
       "overflow-wrap:break-word}th{background:#f3f3f3}table.board{font-size:.85rem}"
       "table.board th,td.rank,td.value,td.speedup,td.quality,td.server_p99_ms"
       "{white-space:nowrap}td.submission,td.notes,td.system_name,td.accelerator"
       "{overflow-wrap:anywhere}td.notes{min-width:12rem}table.findings td{overflow-wrap:anywhere}"
       "tr.baseline td{background:#eef3fb;font-style:italic}"
       ".chart svg{max-width:100%;height:auto}.ref{color:#333}"
       ".summary{display:flex;gap:1rem;flex-wrap:wrap;margin:.5rem 0 1rem}"
       ".summary a,.summary span{border:1px solid #ccc;border-radius:.4rem;padding:.4rem .8rem;"
       "text-decoration:none;color:inherit}.summary b{font-size:1.3rem}"
       ".legend{background:#fafafa;border:1px solid #ddd;padding:.5rem 1rem;font-size:.9rem}"
       ".empty{font-size:1.1rem;font-weight:600;color:#a00;border:1px solid #e99;"
       "padding:.6rem 1rem;background:#fff4f4}"
       "details{border:1px solid #ddd;border-radius:.3rem;margin:.4rem 0;padding:.3rem .6rem}"
       "details summary{cursor:pointer}details.invalid summary b{color:#a00}"
       "details.flagged summary b{color:#a60}table.findings{font-size:.8rem;margin:.4rem 0}"
       "tr.follow td:first-child{padding-left:1.4rem}tr.follow td{color:#555}")


def to_html(data: dict) -> str:
    e = lambda v: html.escape(text(v if v is not None else ""), quote=True)  # noqa: E731

    def rules(v) -> str:  # escaped text with its rule ids linked to their explanation
        return _RULE_ID.sub(r'<a href="explain.html#\1">\1</a>', e(v))
    s = summary(data)
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
             f"<title>Leaderboard ({e(data['profile'])})</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>Leaderboard <small>(profile {e(data['profile'])})</small></h1>",
             "<div class=\"summary\" id=\"summary\">"
             f"<a href=\"#boards\"><b>{s['ranked']}</b> ranked</a>"
             f"<a href=\"#flagged\"><b>{s['flagged']}</b> flagged</a>"
             f"<a href=\"#invalid\"><b>{s['invalid']}</b> invalid</a>"
             f"<span>baseline: {'the committed reference' if s['baseline'] else 'none'}</span>"
             "</div>",
             "<div class=\"legend\" id=\"legend\"><b>Legend.</b> <span class=\"swatch\">"
             "&#9670;</span> <i>baseline</i> row (shaded): the committed reference submission, "
             "recognised by its runs' SHA-256 (not by its name); never ranked, never a copy; "
             "speed-ups are over it (else over the reference figure in rules.yaml). "
             "speedup: the entry's figure over the reference's (for a latency metric, the "
             "reference's over the entry's). server_p99_ms: LoadGen's 99th percentile episode "
             "latency of the Server performance run, in ms. Rule ids link to "
             "<a href=\"explain.html\">their explanations</a> (what, why, how to fix).</div>",
             "<div id=\"boards\"></div>"]
    if not data["boards"]:
        parts.append("<p class=\"empty\" id=\"empty\">No valid entries: nothing is ranked on "
                     "this board. The flagged and invalid entries below say why.</p>")
    for i, (key, rows) in enumerate(data["boards"].items()):
        cols = _columns(key)
        ref = data.get("references", {}).get(key, {})
        parts.append(f"<h2>{e(key)}</h2>")
        chart = bar_chart_svg(key, rows, ref.get("value"), i, ref.get("lower_is_better", False))
        parts.append(f"<div class=\"chart\">{chart}</div>")
        parts.append("<p class=\"ref\">Speed-ups are over "
                     + (f"{e(ref['value'])} {e(rows[0].get('metric'))}: "
                        if ref.get("value") is not None else "nothing: ")
                     + f"{e(ref.get('source', 'none'))}.</p><table class=\"board\"><thead><tr>"
                     + "".join(f"<th>{_wbr(e(c))}</th>" for c in cols)
                     + "</tr></thead><tbody>")
        for r in rows:
            cells = "".join(f"<td class=\"{e(c)}\">"
                            + ("&#9670; baseline" if c == "rank" and r.get("baseline") else
                               rules(_cell(r, c)) if c == "notes" else
                               _wbr(e(_cell(r, c))) if c in ("metric", "quality_metric") else
                               e(_cell(r, c)))
                            + "</td>" for c in cols)
            cls = ' class="baseline"' if r.get("baseline") else ""
            parts.append(f"<tr{cls}>{cells}</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2 id=\"flagged\">Flagged for review (not ranked)</h2>")
    for n, fl in enumerate(data.get("flagged", [])):
        parts.append(f"<details class=\"flagged\" id=\"flagged-{n}\"><summary><b>"
                     f"{e(fl['submission'])}</b>: {rules(fl['reason'])}</summary>"
                     + _findings_table(fl.get("findings") or [], e, rules) + "</details>")
    if not data.get("flagged"):
        parts.append("<p>none</p>")
    parts.append("<h2 id=\"invalid\">Invalid submissions</h2>")
    for n, inv in enumerate(data["invalid"]):
        found = inv.get("findings") or [{"rule": "", "message": x} for x in inv["reasons"]]
        shown = len(found)
        more = inv["n_errors"] - shown
        first = ", ".join(dict.fromkeys(f["rule"] for f in found if f.get("rule")))
        parts.append(f"<details class=\"invalid\" id=\"invalid-{n}\"><summary><b>"
                     f"{e(inv['submission'])}</b> ({_count(inv['n_errors'], 'error')}: "
                     f"{rules(first)})</summary>" + _findings_table(found, e, rules)
                     + (f"<p>and {more} more</p>" if more > 0 else "") + "</details>")
    if not data["invalid"]:
        parts.append("<p>none</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _wbr(escaped: str) -> str:
    """Break opportunities after underscores (samples_per_second), so a column can narrow."""
    return escaped.replace("_", "_<wbr>")


def _findings_table(findings: list[dict], e, rules) -> str:
    """Every finding of an entry, follow-ons under their cause: rule (linked), where, what,
    expected, found, hint."""
    from compliance.causes import group_dicts
    out = ["<table class=\"findings\"><thead><tr><th>rule</th><th>where</th><th>what</th>"
           "<th>expected</th><th>found</th><th>hint</th></tr></thead><tbody>"]

    def row(f: dict, cls: str = "") -> str:
        where = f"{f.get('file') or ''} {f.get('location') or ''}".strip()
        rid = f.get("rule") or ""
        return (f"<tr{cls}><td>{rules(rid)}</td><td>{e(where)}</td><td>{e(f.get('message'))}"
                f"</td><td>{e(f.get('expected'))}</td><td>{e(f.get('found'))}</td>"
                f"<td>{e(f.get('hint'))}</td></tr>")
    for g in group_dicts(findings):
        out.append(row(g["cause"]))
        if g["follow_on"]:
            out.append(f"<tr class=\"follow\"><td colspan=\"6\"><i>"
                       f"{_count(len(g['follow_on']), 'follow-on finding')} of the cause above:"
                       "</i></td></tr>")
            out += [row(f, " class=\"follow\"") for f in g["follow_on"]]
    out.append("</tbody></table>")
    return "".join(out)


_SVG_ID = re.compile(r'(\bid="|href="#|url\(#)')


def bar_chart_svg(key: str, rows: list[dict], ref_value, index: int,
                  lower_is_better: bool = False) -> str:
    """One board's bar chart as inline SVG: an entry's figure per bar, best at the top, the
    reference dashed. Text is drawn as paths (no submission text becomes markup) and every
    SVG id gets the chart's prefix (several charts share one page). Never raises: collect()
    has drawn it (a failure is a finding there); a failure here is a note on the page."""
    ref = {"value": ref_value, "lower_is_better": lower_is_better}
    got = _CHARTS.pop(_chart_key(key, rows, ref, index), None)
    if got is not None:
        return got
    try:
        return _draw_chart(key, rows, ref_value, index, lower_is_better)
    except Exception as exc:  # a drawing bug must not cost the page
        return f"<p>chart not drawn (a checker bug: {html.escape(text(repr(exc), 200))})</p>"


def _draw_chart(key: str, rows: list[dict], ref_value, index: int,
                lower_is_better: bool = False) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": f"c{index}"}):
        return _draw_bars(key, rows, ref_value, index, lower_is_better, Figure, FigureCanvasSVG)


def _draw_bars(key, rows, ref_value, index, lower_is_better, Figure, FigureCanvasSVG) -> str:
    shown = [r for r in rows if isinstance(r.get("value"), (int, float))][:CHART_ROWS]
    if not shown:
        return "<p>no figure to draw</p>"
    fig = Figure(figsize=(7.5, 0.9 + 0.32 * len(shown)), dpi=96, layout="constrained")
    FigureCanvasSVG(fig)
    ax = fig.subplots()
    names = [text(("baseline: " if r.get("baseline") else f"{r['rank']}. ") + r["submission"],
                  40).replace("$", r"\$") for r in shown]
    values = [r["value"] for r in shown]
    bars = ax.barh(range(len(shown)), values, height=0.6,
                   color=["tab:gray" if r.get("baseline") else "tab:blue" for r in shown])
    ax.bar_label(bars, labels=[f"{v:,.4g}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(range(len(shown)), names, fontsize=8)
    ax.invert_yaxis()
    if isinstance(ref_value, (int, float)):
        ax.axvline(ref_value, color="tab:red", linestyle="--", linewidth=1.2, zorder=3,
                   label=f"reference {ref_value:,.4g}")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlim(0, max(values + [ref_value if isinstance(ref_value, (int, float)) else 0])
                * 1.18)
    metric = text(shown[0].get("metric") or "value", 60).replace("$", r"\$")
    ax.set_xlabel(metric + (" (lower is better)" if lower_is_better else " (higher is better)"),
                  fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML
    return _SVG_ID.sub(lambda m: f"{m.group(1)}c{index}-", svg)


def build_leaderboard(folder: Path, out: Path, profile: str = "official",
                      workers: int = 2, replay: int | None = None,
                      replay_seed: int | None = None, progress=None,
                      cluster: str | None = None, reproduction: dict | None = None) -> dict:
    """Check and rank `folder`, write the board to `out` (leaderboard.{json,md,csv},
    index.html and explain.html beside it), print one summary line; `progress(name)` is called
    as each entry's check finishes."""
    from compliance.explain import explain_html
    data = collect(Path(folder), profile, workers, replay, replay_seed, progress, cluster)
    from compliance.reproduce import attach_reproductions  # records beside the entries
    attach_reproductions(data, Path(folder), cluster=cluster, progress=progress,
                         **(reproduction or {}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(
        json.dumps(json_value({**data, "summary": summary(data)}), indent=1,
                   allow_nan=False) + "\n")
    (out / "leaderboard.md").write_text(to_markdown(data))
    (out / "leaderboard.csv").write_text(to_csv(data))
    (out / "index.html").write_text(to_html(data))
    (out / "explain.html").write_text(explain_html())
    print(f"{summary_line(data)}; wrote {out}/"
          "{leaderboard.md,leaderboard.csv,leaderboard.json,index.html,explain.html}")
    return data
