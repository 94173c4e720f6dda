"""The instructor's path, scripted: a course of five entries (two copies of the reference, one
forged, one truncated archive, one valid) beside the reference gives a leaderboard, an HTML board
that renders whole in Chromium (screenshot in build/screenshots/), and `explain` for every rule
that fired.

The smoke submission stands in for the committed reference (leaderboard.REFERENCE_DIR, and
T613's reference prints), so the copies are quick to check; the valid student is the committed
reference's official run under another name: the only other real run in the tree, and by
content not the stand-in's.
"""
import json
import re
import shutil
from pathlib import Path

import pytest

import reference.rules
from compliance import cli, leaderboard
from compliance.checks import copies
from tests.chromium import render
from tests.compliance.mutate import apply
from tests.compliance.test_check_cli import truncated_archive
from tests.compliance.test_leaderboard_page import PROBE

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
OFFICIAL = ROOT / "results/closed/reference"


def _as(src: Path, dest: Path, name: str) -> Path:
    """A copy of `src` submitted by `name` (what a student does who copies a submission)."""
    shutil.copytree(src, dest)
    for m in dest.glob("results/*/*/*/measurements.json"):
        apply(dest, {"op": "json_set", "path": str(m.relative_to(dest)),
                     "pointer": ["submitter"], "value": name})
    return dest


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("instructor")
    course = tmp / "course"
    course.mkdir()
    _as(SMOKE, course / "reference", "reference")          # the reference itself: the baseline
    _as(SMOKE, course / "alice", "alice")                  # two students copy the reference
    _as(SMOKE, course / "bob", "bob")
    mallory = _as(SMOKE, course / "mallory", "mallory")    # one forges a figure
    apply(mallory, {"op": "json_set", "path": "results/cpu/nano-react/Offline/measurements.json",
                    "pointer": ["performance", "value"], "value": 1e9})
    truncated_archive(course / "trudy.tar.gz")             # one uploads a cut archive
    _as(OFFICIAL, course / "carol", "carol")               # one submits a run of their own
    out = tmp / "board"
    fake = tmp / "root/results/closed"
    fake.mkdir(parents=True)
    (fake / "reference").symlink_to(SMOKE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reference.rules, "ROOT", tmp / "root")
        prints = copies.reference_prints.__wrapped__()   # T613's view of the stand-in
        mp.undo()
        mp.setattr(copies, "reference_prints", lambda: prints)
        mp.setattr(leaderboard, "REFERENCE_DIR", SMOKE)
        assert cli.main(["leaderboard", str(course), "--out", str(out), "--profile", "official",
                         "--replay", "0", "--workers", "2"]) == 0
    return out


def test_the_course_ranks_the_valid_entry_over_the_reference_baseline(board):
    data = json.loads((board / "leaderboard.json").read_text())
    assert data["summary"] == {"ranked": 1, "baseline": "reference", "flagged": 2, "invalid": 2}
    for key, rows in data["boards"].items():
        assert [(r["submission"], r["rank"], r["baseline"]) for r in rows] == \
            [("reference", None, True), ("carol", 1, False)], key
        assert "baseline row" in data["references"][key]["source"]
    flagged = {f["submission"]: f for f in data["flagged"]}
    assert sorted(flagged) == ["alice", "bob"]                 # the reference is never a copy
    for f in flagged.values():
        assert f["members"] == ["alice", "bob"] and f["of_reference"]
        assert "copy group: alice, bob and the reference" in f["reason"]
    invalid = {i["submission"]: i for i in data["invalid"]}
    assert sorted(invalid) == ["mallory", "trudy"]
    assert "G307" in {f["rule"] for f in invalid["mallory"]["findings"]}
    trudy = invalid["trudy"]
    assert trudy["findings"][0]["rule"] == "L104" and len(trudy["findings"]) == trudy["n_errors"]
    md = (board / "leaderboard.md").read_text()
    assert "1 ranked, 2 flagged, 2 invalid (baseline: the committed reference)" in md
    assert md.count("L101") == sum(f["rule"] == "L101" for f in trudy["findings"])


def test_the_html_board_renders_whole_in_chromium(board):
    shots = ROOT / "build/screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page = render(board / "index.html", probe=PROBE, screenshot=shots / "instructor-board.png")
    p = page["probe"]
    assert page["errors"] == [] and len(page["svgs"]) == 6
    assert p["overflow"] <= 0 and p["clipped"] == [], p
    assert p["summary"] == "1 ranked2 flagged2 invalidbaseline: the committed reference"
    assert p["baseline"] == ["\u25c6 baseline"] * 6
    trudy = next(d for d in p["details"] if d["summary"].startswith("trudy"))
    assert "follow-on finding" in trudy["text"] and "and " not in trudy["summary"]
    explain = (board / "explain.html").read_text()
    assert set(p["links"]) <= set(re.findall(r'id="([A-Z][0-9]{3})"', explain))


def test_explain_answers_for_every_rule_that_fired(board, capsys):
    data = json.loads((board / "leaderboard.json").read_text())
    fired = {f["rule"] for e in data["invalid"] + data["flagged"] for f in e["findings"]}
    fired |= {m for rows in data["boards"].values() for r in rows
              for m in re.findall(r"\b[A-Z][0-9]{3}\b", r["notes"])}
    assert {"B702", "G307", "L104"} <= fired
    assert cli.main(["explain", *sorted(fired)]) == 0
    out = capsys.readouterr().out
    for rule in fired:
        section = out[out.index(f"{rule} "):]
        assert "Why it exists:" in section and "How to fix it:" in section, rule
