"""Code in every submission and `compliance reproduce` (issue 33): the code that ran travels
with the figures, and a re-run of it on this machine is compared with them."""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from compliance import cli, reproduce
from loadgen_harness import codepack

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results/closed/reference"
SMOKE = ROOT / "tests/fixtures/smoke_submission"


def _rehash(sub: Path, add=()) -> None:
    doc = json.loads((sub / "code/code.json").read_text())
    for name in [*doc["files"], *add]:
        doc["files"][name] = hashlib.sha256((sub / "code" / name).read_bytes()).hexdigest()
    (sub / "code/code.json").write_text(json.dumps(doc))


def _patch(commit: str, path: str, old: str, new: str) -> bytes:
    """A real patch of one file of the suite at `commit` (as make submission would write)."""
    text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    assert old in text
    with_tmp = ROOT / "build" / "patch-test"
    shutil.rmtree(with_tmp, ignore_errors=True)
    (with_tmp / "a" / Path(path).parent).mkdir(parents=True)
    (with_tmp / "b" / Path(path).parent).mkdir(parents=True)
    (with_tmp / "a" / path).write_text(text)
    (with_tmp / "b" / path).write_text(text.replace(old, new, 1))
    diff = subprocess.run(["git", "diff", "--no-index", "--binary", "a", "b"], cwd=with_tmp,
                          capture_output=True).stdout
    shutil.rmtree(with_tmp, ignore_errors=True)
    return diff.replace(b"a/a/", b"a/").replace(b"b/b/", b"b/")


def _patch_engine(sub: Path) -> None:
    """The submission's code bundle gains a real patch (the engine's docstring), consistently
    hashed: what make submission writes for a student who edited the suite."""
    doc = json.loads((sub / "code/code.json").read_text())
    (sub / "code/patch.diff").write_bytes(_patch(doc["suite_commit"], "reference/engine.py",
                                                 '"""', '"""Patched. '))
    doc["dirty"] = True
    (sub / "code/code.json").write_text(json.dumps(doc))
    _rehash(sub, add=["patch.diff"])


def test_write_code_bundles_the_working_tree_and_verifies(tmp_path):
    doc = codepack.write_code(tmp_path / "code", "cpu", ROOT / "systems/cpu.yaml", 4 << 20)
    assert codepack.COMMIT.fullmatch(doc["suite_commit"])

    def read(n):
        return (tmp_path / "code" / n).read_bytes() if (tmp_path / "code" / n).exists() else None
    assert codepack.verify_code(doc, read) == []
    assert (tmp_path / "code/system.yaml").read_bytes() == (ROOT / "systems/cpu.yaml").read_bytes()
    if doc["dirty"]:  # this checkout has changes: they must apply to the commit named
        assert codepack.patch_applies(doc["suite_commit"], read("patch.diff")) == ""
        assert not any(p.startswith(("results/", "build/")) for p in
                       codepack.patch_paths(read("patch.diff")))


def test_a_patch_over_its_bound_stops_the_submission(tmp_path, monkeypatch):
    monkeypatch.setattr(codepack, "working_patch", lambda base, root=ROOT: (b"x" * 100, []))
    with pytest.raises(codepack.CodeError, match="over the 10 bytes"):
        codepack.write_code(tmp_path / "code", "cpu", ROOT / "systems/cpu.yaml", 10)
    assert not (tmp_path / "code").exists()


@pytest.mark.parametrize("edit, said", [
    (lambda s: (s / "code/code.json").unlink(), "no readable code/code.json"),
    (lambda s: (s / "code/system.yaml").write_text("tampered: true\n"), "SHA-256 differs"),
    (lambda s: (s / "code/code.json").write_text("[1, 2]"), "not a JSON object"),
])
def test_a_broken_bundle_is_one_line_and_runs_nothing(tmp_path, capsys, edit, said):
    sub = tmp_path / "alice"
    shutil.copytree(SMOKE, sub)
    edit(sub)
    assert cli.main(["reproduce", str(sub)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1
    assert not reproduce.record_path(sub).exists()


def test_patched_code_needs_allow_code(tmp_path, capsys):
    sub = tmp_path / "bob"
    shutil.copytree(SMOKE, sub)
    _patch_engine(sub)
    assert cli.main(["reproduce", str(sub), "--benchmark", "nano-react"]) == 2
    err = capsys.readouterr().err
    assert "untrusted code" in err and "--allow-code" in err and "reference/engine.py" in err


def test_unknown_choices_are_usage_errors(capsys):
    assert cli.main(["reproduce", str(SMOKE), "--benchmark", "nano-nothing"]) == 2
    assert "no result for nano-nothing" in capsys.readouterr().err
    assert cli.main(["reproduce", "/no/such/submission"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_record_lives_beside_the_submission_never_inside(tmp_path):
    assert reproduce.record_path(tmp_path / "alice") == tmp_path / "alice.reproduction.json"
    (tmp_path / "bob.tar.gz").write_bytes(b"")
    assert reproduce.record_path(tmp_path / "bob.tar.gz") == tmp_path / "bob.reproduction.json"


def test_a_patched_submission_reproduces_with_the_same_answers(tmp_path):
    """The real thing, as untrusted code: the reference's nano-codegen Offline result with a
    patch to the engine's docstring, rebuilt at its commit, run as nobody without network,
    checked, and compared: the same answers on every sample both runs scored."""
    sub = tmp_path / "carol"
    shutil.copytree(REFERENCE, sub, ignore=shutil.ignore_patterns("nano-react", "nano-planner"))
    _patch_engine(sub)
    out = tmp_path / "record.json"
    rc = cli.main(["reproduce", str(sub), "--benchmark", "nano-codegen", "--scenario",
                   "Offline", "--allow-code", "--json", str(out)])
    record = json.loads(out.read_text())
    assert rc in (0, 1)  # 1: the rate was under the ratio on a busy machine
    assert record == json.loads(reproduce.record_path(sub).read_text())
    assert record["code"]["patched_code"] and record["check"]["valid"], record["check"]
    (r,) = record["results"]
    assert r["answers_compared"] >= 100 and r["answers_identical"] == r["answers_compared"]
    assert r["ratio"] > 0 and record["machine"]["host_processor_core_count"] >= 1
    assert record["verdict"] == ("reproduced" if r["ratio"] >= record["min_ratio"]
                                 else "not reproduced")


def _record(sub: Path, reproduced: float, ok: bool = True) -> None:
    code = json.loads((sub / "code/code.json").read_text())["files"]
    reproduce.write_record(sub, {
        "created": "2026-12-07T10:00:00+00:00",
        "code": {"system_sha256": code["system.yaml"], "patch_sha256": code.get("patch.diff")},
        "check": {"valid": True}, "verdict": "reproduced",
        "results": [{"benchmark": "nano-react", "scenario": "Offline", "submitted": 10.0,
                     "reproduced": reproduced, "ratio": reproduced / 10.0,
                     "reproduced_ok": ok}]})


def test_rank_reproduced_orders_by_the_re_run_figures(tmp_path):
    for name in ("alice", "bob", "carol"):
        shutil.copytree(SMOKE / "code", tmp_path / name / "code")
    _record(tmp_path / "alice", 9.0)
    _record(tmp_path / "bob", 12.0)  # bob submitted less, reproduced more
    rows = [{"submission": n, "rank": i + 1, "value": v, "baseline": False, "notes": ""}
            for i, (n, v) in enumerate([("carol", 30.0), ("alice", 20.0), ("bob", 10.0)])]
    data = {"boards": {"nano-react / Offline / closed": rows},
            "references": {"nano-react / Offline / closed": {"lower_is_better": False}}}
    reproduce.attach_reproductions(data, tmp_path, rank="reproduced")
    board = data["boards"]["nano-react / Offline / closed"]
    assert [(r["submission"], r["rank"]) for r in board] == [("bob", 1), ("alice", 2),
                                                              ("carol", None)]
    assert board[0]["reproduced"] == "1.20x (2026-12-07)"
    assert board[2]["reproduced"] == "unreproduced"
    # bob uploads other code: his record is stale and no longer counts
    (tmp_path / "bob/code/system.yaml").write_text("other: code\n")
    from tests.compliance.mutate import apply
    apply(tmp_path / "bob", {"op": "code_rehash"})
    assert reproduce.read_record(tmp_path / "bob") is None
    assert reproduce.read_record(tmp_path / "alice") is not None


def test_the_board_shows_the_reproduction_column(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(SMOKE, course / "ci")
    _record(course / "ci", 5.0, ok=False)
    out = tmp_path / "board"
    assert cli.main(["leaderboard", str(course), "--out", str(out), "--profile", "smoke",
                     "--replay", "0"]) == 0
    data = json.loads((out / "leaderboard.json").read_text())
    row = data["boards"]["nano-react / Offline / closed"][0]
    assert row["reproduced"] == "0.50x (2026-12-07) NOT REPRODUCED"
    assert "reproduced" in (out / "leaderboard.csv").read_text().splitlines()[0]
    assert "NOT REPRODUCED" in (out / "index.html").read_text()
