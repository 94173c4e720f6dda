"""The leaderboard over a folder mixing valid, invalid, copied and hostile submissions."""
import csv
import dataclasses
import io
import json
import shutil
import tarfile
from html.parser import HTMLParser
from pathlib import Path

from compliance import cli, leaderboard
from tests.compliance.mutate import apply

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
RESULTS = [f"results/cpu/{b}/{s}/measurements.json" for b in ("nano-react", "nano-codegen",
                                                                        "nano-planner")
           for s in ("Offline", "Server")]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _as(dest: Path, name: str) -> Path:
    """A copy of the smoke submission submitted by `name`."""
    shutil.copytree(SMOKE, dest)
    for rel in RESULTS:
        apply(dest, {"op": "json_set", "path": rel, "pointer": ["submitter"], "value": name})
    return dest


def _tar(src: Path, path: Path, arcname: str) -> None:
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname=arcname)


def _board(course: Path, out: Path, workers: int = 2) -> dict:
    # replay is R801's (test_replay.py); here it would only re-run the same episodes
    leaderboard.build_leaderboard(course, out, "smoke", workers, replay=0)
    return json.loads((out / "leaderboard.json").read_text())


def test_leaderboard_ranks_valid_and_lists_invalid(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "alice", "alice")
    forged = _as(course / "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>")
    apply(forged, {"op": "json_set", "path": RESULTS[0], "pointer": ["performance", "value"],
                   "value": 1e9})
    (course / "notes.txt").write_text("not a submission")
    out = tmp_path / "board"
    assert cli.main(["leaderboard", str(course), "--out", str(out), "--profile", "smoke",
                     "--replay", "0"]) == 0
    data = json.loads((out / "leaderboard.json").read_text())
    offline = data["boards"]["nano-react / Offline / closed"]
    assert [(r["submission"], r["rank"]) for r in offline] == [("alice", 1)]
    assert offline[0]["quality"] is not None and offline[0]["quality_metric"] == "exact_match"
    assert [i["submission"] for i in data["invalid"]] == ["<img src=x onerror=alert(1)>"]
    assert "G307" in " ".join(data["invalid"][0]["reasons"])
    rows = list(csv.reader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert rows[0][:4] == ["benchmark", "scenario", "division", "rank"] and len(rows) == 7
    assert {r[0] for r in rows[1:]} == {"nano-react", "nano-codegen", "nano-planner"}
    md = (out / "leaderboard.md").read_text()
    assert "## nano-react / Server / closed" in md and "Invalid submissions" in md
    assert "<img" not in md
    html = (out / "index.html").read_text()
    p = _Collect()
    p.feed(html)
    assert "img" not in p.tags and "script" not in p.tags  # escaped, never markup
    assert "<img src=x onerror=alert(1)>" in "".join(p.text)


def test_copies_of_one_run_are_flagged_not_ranked(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "alice", "alice")
    _tar(_as(tmp_path / "bob", "bob"), course / "bob.tar.gz", "bob")
    data = _board(course, tmp_path / "board")
    assert not data["boards"]
    assert sorted(f["submission"] for f in data["flagged"]) == ["alice", "bob"]
    assert all(f["reason"].startswith("B702") for f in data["flagged"])


def test_one_submitter_one_entry_and_the_entry_is_its_submitter(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    _tar(_as(course / "alice", "alice"), course / "alice.tar.gz", "alice")
    _as(course / "carol", "dave")
    data = _board(course, tmp_path / "board", workers=1)
    reasons = {i["submission"]: " ".join(i["reasons"]) for i in data["invalid"]}
    assert [i["submission"] for i in data["invalid"]].count("alice") == 2
    assert "B703" in reasons["alice"] and "B704" in reasons["carol"]
    assert not data["boards"]


def test_an_implausible_result_is_marked_for_reproduction(tmp_path, monkeypatch):
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "alice", "alice")
    rules = leaderboard.load_rules()
    tiny = {b: {"Offline": 0.01, "Server": 0.01, "cores": 2} for b in rules.benchmarks}
    patched = dataclasses.replace(rules, checker={**rules.checker, "reference_results": tiny})
    monkeypatch.setattr(leaderboard, "load_rules", lambda: patched)
    data = _board(course, tmp_path / "board", workers=1)
    row = data["boards"]["nano-react / Offline / closed"][0]
    assert row["notes"].startswith("B701") and row["rank"] == 1
    assert "B701" in (tmp_path / "board/leaderboard.md").read_text()


def test_formula_names_are_neutralised_in_the_csv(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "=1+1", "=1+1")
    leaderboard.build_leaderboard(course, tmp_path / "board", "smoke", 1, replay=0)
    rows = list(csv.reader(io.StringIO((tmp_path / "board/leaderboard.csv").read_text())))
    assert rows[1][4] == "'=1+1"


def test_a_crashing_check_does_not_stop_the_folder(tmp_path, monkeypatch):
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "alice", "alice")
    (course / "zed").mkdir()
    real = leaderboard.check_path

    def flaky(path, *a, **kw):
        if Path(path).name == "zed":
            raise RuntimeError("boom")
        return real(path, *a, **kw)
    monkeypatch.setattr(leaderboard, "check_path", flaky)
    data = _board(course, tmp_path / "board", workers=1)
    assert [i["submission"] for i in data["invalid"]] == ["zed"]
    assert "X901" in data["invalid"][0]["reasons"][0]
    assert data["boards"]["nano-react / Offline / closed"][0]["submission"] == "alice"


def test_leaderboard_of_a_missing_folder_is_a_usage_error(tmp_path):
    assert cli.main(["leaderboard", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2


def test_near_identical_copies_are_flagged_too(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "alice", "alice")
    bob = _as(course / "bob", "bob")
    for f in list(bob.rglob("*.jsonl")) + list(bob.rglob("mlperf_log_detail.txt")):
        f.write_text(f.read_text() + "\n")  # every file's bytes differ; the episodes do not
    data = _board(course, tmp_path / "board", workers=1)
    assert sorted(f["submission"] for f in data["flagged"]) == ["alice", "bob"]
