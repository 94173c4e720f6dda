"""Run every rule of the registry over one submission (directory or archive) into a Report."""
from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

from compliance.archive import extract, is_archive
from compliance.context import Ctx
from compliance.findings import Finding, Report, Severity
from compliance.registry import REGISTRY
from compliance.tree import Tree
from loadgen_harness.rules import Rules, load_rules
from reference.grading import BudgetExceeded


def find_root(top: Path, max_depth: int = 4) -> Path | None:
    """The directory holding submission.json, searched breadth-first below `top`."""
    level = [top]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            if (d / "submission.json").is_file() and not (d / "submission.json").is_symlink():
                return d
            try:
                nxt += [c for c in sorted(d.iterdir()) if c.is_dir() and not c.is_symlink()]
            except OSError:
                pass
        level = nxt
    return None


def check_tree(root: Path, rules: Rules, expect_profile: str, label: str) -> Report:
    report = Report(label)
    ctx = Ctx(Tree(root), rules, expect_profile)
    t0 = time.perf_counter()
    try:
        _run_rules(ctx, report)
    finally:
        ctx.close()
    report.meta = {"profile_expected": expect_profile, "systems": ctx.systems,
                   "results": [r.rel for r in ctx.results], "rows": _rows(ctx),
                   "check_seconds": round(time.perf_counter() - t0, 3)}
    return report


def _run_rules(ctx: Ctx, report: Report) -> None:
    for rule in REGISTRY:
        if rule.check is None:
            continue
        try:
            report.findings.extend(rule.check(ctx))
        except BudgetExceeded as exc:  # a hostile or broken submission, not a checker bug
            report.findings.append(Finding(
                rule.id, Severity.ERROR, "", f"not checked to the end: {exc}",
                hint="the submission's programs take too long to re-verify in the sandbox"))
        except Exception as exc:  # a checker bug: its own finding, never a silent verdict
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            report.findings.append(Finding(
                "X901", Severity.ERROR, "", f"rule {rule.id} crashed: {type(exc).__name__}: {exc}",
                location=f"{Path(tb.filename).name}:{tb.lineno}",
                hint="a bug in the checker; please report it with this submission"))


def _rows(ctx: Ctx) -> list[dict]:
    """One leaderboard row per result, from measurements.json (trusted only when the
    report is valid: G307 and Q404 tie those numbers to LoadGen's logs)."""
    rows = []
    for r in ctx.results:
        m = ctx.measurements(r) or {}
        perf = m.get("performance") if isinstance(m.get("performance"), dict) else {}
        acc = m.get("accuracy") if isinstance(m.get("accuracy"), dict) else {}
        sysdoc, _ = ctx.tree.json(f"systems/{r.system}.json")
        decl = sysdoc.get("declaration") if isinstance(sysdoc, dict) else None
        rows.append({"system": r.system, "benchmark": r.benchmark, "scenario": r.scenario,
                     "division": m.get("division"), "metric": perf.get("metric"),
                     "value": perf.get("value"), "quality": acc.get(acc.get("metric")) if isinstance(acc.get("metric"), str) else None,
                     "quality_metric": acc.get("metric"),
                     "system_name": decl.get("system_name") if isinstance(decl, dict) else None,
                     "accelerator": decl.get("accelerator_model_name") if isinstance(decl, dict) else None})
    return rows


def check_path(path: Path, expect_profile: str = "official", rules: Rules | None = None) -> Report:
    """Check a submission directory or archive; never raises on bad input."""
    rules = rules or load_rules()
    path = Path(path)
    if is_archive(path) and path.is_file():
        with tempfile.TemporaryDirectory(prefix="nano-check-") as tmp:
            problems = extract(path, Path(tmp))
            root = find_root(Path(tmp))
            if root is None:
                report = Report(str(path))
            else:
                report = check_tree(root, rules, expect_profile, str(path))
            for p in problems:
                report.findings.insert(0, Finding("L104", Severity.ERROR, path.name,
                                                  f"archive member refused: {p}",
                                                  hint="submit a plain archive of the layout"))
            if root is None:
                report.findings.append(Finding("L101", Severity.ERROR, path.name,
                                               "no submission.json found in the archive"))
            return report
    if not path.is_dir():
        report = Report(str(path))
        report.findings.append(Finding("L101", Severity.ERROR, str(path),
                                       "not a submission directory or archive",
                                       found="missing" if not path.exists() else "file"))
        return report
    root = find_root(path)
    if root is None:
        report = Report(str(path))
        report.findings.append(Finding("L101", Severity.ERROR, "submission.json",
                                       "no submission.json found", expected="results/<division>/<submitter>/submission.json"))
        return report
    return check_tree(root, rules, expect_profile, str(path))
