"""A check on both cores (compliance/parallel.py) finds exactly what a serial check finds, on
a valid submission and on a tampered one, however its forked children end."""
import json
import shutil
from pathlib import Path

import pytest

from compliance import parallel
from compliance.check import check_path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
REACT = "results/cpu/nano-react/Offline"


def _findings(report) -> list[dict]:
    return [f.to_dict() for f in report.findings]


def _edit_line(path: Path, n: int, edit) -> None:
    lines = path.read_text().splitlines()
    rec = json.loads(lines[n])
    edit(rec)
    lines[n] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def tampered(tmp_path_factory) -> Path:
    """Findings of forked rules (T607, T606) and of the parent's (T601, T604) at once."""
    root = tmp_path_factory.mktemp("par") / "sub"
    shutil.copytree(SMOKE, root)
    perf = root / REACT / "performance/run_1/agent_trace.jsonl"
    _edit_line(perf, 0, lambda r: r.update(generated_tokens=r["generated_tokens"] + 1))  # T607
    lines = perf.read_text().splitlines()
    perf.write_text("\n".join(lines + lines[1:4]) + "\n")                                 # T606
    acc = root / REACT / "accuracy/agent_trace.jsonl"
    _edit_line(acc, 2, lambda r: r["steps"][0].update(generation_ms=-1.0))               # T601
    return root


@pytest.mark.parametrize("which", ["smoke", "tampered"])
def test_a_check_on_both_cores_finds_exactly_what_a_serial_check_finds(which, tampered):
    root = SMOKE if which == "smoke" else tampered
    serial = check_path(root, "smoke", parallel=False)
    both = check_path(root, "smoke", parallel=True)
    assert _findings(both) == _findings(serial)
    if which == "tampered":
        assert {"T601", "T606", "T607"} <= set(serial.rule_ids())
    else:
        assert serial.valid


def test_a_rules_child_that_dies_changes_no_finding(tampered, monkeypatch):
    serial = _findings(check_path(tampered, "smoke", parallel=False))

    def boom(*a, **k):  # the child cannot answer: its rules run in the parent
        raise RuntimeError("the child's answer is lost")
    monkeypatch.setattr(parallel.pickle, "dumps", boom)
    assert _findings(check_path(tampered, "smoke", parallel=True)) == serial


def test_a_parse_child_that_dies_changes_no_finding(tampered, monkeypatch):
    import marshal
    serial = _findings(check_path(tampered, "smoke", parallel=False))
    monkeypatch.setattr(marshal, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    assert _findings(check_path(tampered, "smoke", parallel=True)) == serial


def test_a_forked_rule_that_needs_the_sandbox_runs_in_the_parent(tampered, monkeypatch):
    from compliance.registry import REGISTRY
    serial = _findings(check_path(tampered, "smoke", parallel=False))
    monkeypatch.setattr(parallel, "FORKED_RULES", frozenset(r.id for r in REGISTRY))
    assert _findings(check_path(tampered, "smoke", parallel=True)) == serial


def test_one_core_or_small_traces_are_checked_without_a_fork(monkeypatch):
    from compliance.context import Ctx
    from loadgen_harness.untrusted.tree import Tree
    from reference.rules import load_rules
    ctx = Ctx(Tree(SMOKE), load_rules(), "smoke")
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1})
    assert parallel.worth_forking(ctx)  # 10 MB of traces, two cores
    monkeypatch.setattr(parallel, "MIN_TRACE_BYTES", 1 << 30)
    assert not parallel.worth_forking(ctx)
    monkeypatch.setattr(parallel, "MIN_TRACE_BYTES", 0)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0})
    assert not parallel.worth_forking(ctx)


def test_the_command_line_check_ends_with_its_verdict_without_freeing_the_evidence(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "sub"
    shutil.copytree(SMOKE, bad)
    (bad / REACT / "measurements.json").write_text("{}")
    for root, code in ((SMOKE, 0), (bad, 1)):
        out = subprocess.run([sys.executable, "-m", "compliance", "check", str(root),
                              "--profile", "smoke"], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == code, out.stderr[-2000:]
        assert ("VALID" if code == 0 else "INVALID") in out.stdout  # flushed before the exit
        assert "basis" in out.stdout or "rest on" in out.stdout  # the last line is there too


def test_the_shared_evidence_is_parsed_without_error_so_the_fork_really_happens():
    # share_evidence's failure only makes a check serial (same findings, slower): it must
    # not fail quietly on a valid submission (a moved import, a renamed helper)
    from compliance.checks.traces import checked_trace_rows
    from compliance.context import Ctx
    from loadgen_harness.untrusted.tree import Tree
    from reference.rules import load_rules
    ctx = Ctx(Tree(SMOKE), load_rules(), "smoke")
    parallel.share_evidence(ctx)
    paths = parallel._trace_paths(ctx)
    assert paths and all(("trace_rows", rel) in ctx.tree._cache for rel in paths)
    assert all(checked_trace_rows(ctx, rel) for rel in paths)
