"""`python -m compliance check` as a student and an instructor meet it: a folder of several
submissions checked one line each, follow-on findings under their cause, explanations that say
what, why and how to fix, Ctrl-C as one line, and output that is never wrapped off a terminal."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from compliance import cli
from compliance.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"


def truncated_archive(path: Path, keep: float = 0.6) -> Path:
    """The smoke submission as a .tar.gz cut at `keep` of its length (an upload cut short)."""
    name = path.name.split(".")[0]
    with tarfile.open(path, "w:gz") as tf:  # the index first, so the cut falls in the results
        for part in ("submission.json", "systems", "code", "results"):
            tf.add(SMOKE / part, arcname=f"{name}/{part}")
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder of two submissions: a smoke one and a truncated archive, under a long path."""
    top = tmp_path_factory.mktemp("c") / ("a-course-folder-with-a-long-name-" + "x" * 60)
    shutil.copytree(SMOKE, top / "ci")
    truncated_archive(top / "trudy.tar.gz")
    return top


def test_a_folder_of_several_submissions_is_checked_one_line_each(folder, capsys):
    assert cli.main(["check", str(folder), "--profile", "smoke"]) == 1  # one is invalid
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{folder}/ci: VALID")           # whole path, one line
    assert lines[1].startswith(f"{folder}/trudy.tar.gz: INVALID") and "L104" in lines[1]
    assert lines[2].startswith(f"2 submissions in {folder}: 1 valid, 1 invalid")
    assert len(lines) == 3


def test_a_folder_checked_as_json_holds_every_report(folder, capsys):
    assert cli.main(["check", str(folder), "--profile", "smoke", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [s["path"] for s in doc["submissions"]] == [str(folder / "ci"),
                                                       str(folder / "trudy.tar.gz")]
    assert doc["valid"] is False


def test_a_truncated_archive_gives_its_cause_and_groups_the_follow_ons(folder, capsys):
    assert cli.main(["check", str(folder / "trudy.tar.gz"), "--profile", "smoke"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("L104 error") and "unreadable" in lines[2]
    assert "follow-on findings of this cause" in out
    follow = [ln for ln in lines if ln.startswith("        ")]   # listed under the cause
    assert follow and all(not ln.lstrip().startswith("L104") for ln in follow)
    assert cli.main(["check", str(folder / "trudy.tar.gz"), "--profile", "smoke",
                     "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (g,) = doc["groups"]
    assert doc["findings"][g["cause"]]["rule"] == "L104"
    assert len(g["follow_on"]) == len(doc["findings"]) - 1


def test_a_single_submission_below_the_folder_is_reported_by_its_own_path(tmp_path, capsys):
    shutil.copytree(SMOKE, tmp_path / "closed/ci")  # its submitter
    assert cli.main(["check", str(tmp_path / "closed"), "--profile", "smoke"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'closed/ci'}: VALID")


def test_a_smoke_submission_checked_as_official_is_told_the_make_line(capsys):
    assert cli.main(["check", str(SMOKE)]) == 1
    out = capsys.readouterr().out
    assert "make check PROFILE=smoke" in out and "--profile smoke" in out
    assert "a official" not in out


def test_a_missing_submission_is_one_line_naming_what_is_there(tmp_path, capsys):
    (tmp_path / "reference").mkdir()
    assert cli.main(["check", str(tmp_path / "bob")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'bob'} does not exist ({tmp_path} holds: reference)"]


@pytest.mark.parametrize("rule", sorted({r.id for r in REGISTRY}))
def test_explain_says_what_why_and_how_to_fix_with_its_anchor(rule, capsys):
    assert cli.main(["explain", rule.lower()]) == 0
    out = capsys.readouterr().out
    for head in ("What it checks:", "Why it exists:", "How to fix it:", "(rules.md#"):
        assert head in out, (rule, head)
    assert "(undocumented)" not in out


def test_explain_takes_several_rules_and_refuses_an_unknown_one(capsys):
    assert cli.main(["explain", "G308", "B702"]) == 0
    out = capsys.readouterr().out
    assert "G308 profile-eligible" in out and "B702 identical-runs" in out
    assert "make check PROFILE=smoke" in out          # G308's remedy
    assert cli.main(["explain", "G308", "Z999"]) == 2


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import compliance.check

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(compliance.check, "check_path", interrupted)
    assert cli.main(["check", str(SMOKE)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("cmd", ["check", "leaderboard"])
def test_ctrl_c_in_a_real_run_prints_no_traceback(cmd, tmp_path):
    # enough work that the signal lands mid-run: a smoke check takes about 2 s of CPU
    course = tmp_path / "course"
    for name in ("a", "b", "c", "d", "e"):
        shutil.copytree(SMOKE, course / name)
    args = [sys.executable, "-m", "compliance", cmd, str(course), "--profile", "smoke"]
    if cmd == "leaderboard":
        args += ["--out", str(tmp_path / "board"), "--workers", "2", "--replay", "0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)
    time.sleep(4)   # imports done, checks under way
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted", err
