"""The leaderboard over a folder mixing valid and invalid submissions."""
import csv
import io
import json
import shutil
import tarfile
from html.parser import HTMLParser
from pathlib import Path

from compliance import cli
from tests.compliance.mutate import apply

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    shutil.copytree(SMOKE, course / "alice")
    with tarfile.open(course / "bob.tar.gz", "w:gz") as tf:
        tf.add(SMOKE, arcname="bob")
    forged = course / "<img src=x onerror=alert(1)>"
    shutil.copytree(SMOKE, forged)
    apply(forged, {"op": "json_set",
                   "path": "results/cpu/nano-react/Offline/measurements.json",
                   "pointer": ["performance", "value"], "value": 1e9})
    (course / "notes.txt").write_text("not a submission")
    return course


def test_leaderboard_ranks_valid_and_lists_invalid(tmp_path, capsys):
    out = tmp_path / "board"
    assert cli.main(["leaderboard", str(_course(tmp_path)), "--out", str(out),
                     "--profile", "smoke"]) == 0
    data = json.loads((out / "leaderboard.json").read_text())
    offline = data["boards"]["nano-react / Offline / closed"]
    assert [r["submission"] for r in offline] == sorted(r["submission"] for r in offline)  # tie
    assert {r["submission"] for r in offline} == {"alice", "bob"}
    assert [r["rank"] for r in offline] == [1, 2]
    assert [i["submission"] for i in data["invalid"]] == ["<img src=x onerror=alert(1)>"]
    assert "G307" in data["invalid"][0]["reasons"][0]
    rows = list(csv.reader(io.StringIO((out / "leaderboard.csv").read_text())))
    # 2 valid submissions x 2 benchmarks x 2 scenarios, and the header
    assert rows[0][:4] == ["benchmark", "scenario", "division", "rank"] and len(rows) == 9
    assert {r[0] for r in rows[1:]} == {"nano-react", "nano-codegen"}
    assert "quality" in rows[0] and "quality_metric" in rows[0]
    md = (out / "leaderboard.md").read_text()
    assert "## nano-react / Server / closed" in md and "Invalid submissions" in md
    html = (out / "index.html").read_text()
    p = _Collect()
    p.feed(html)
    assert "img" not in p.tags  # the hostile name is escaped, never markup
    assert "<img src=x onerror=alert(1)>" in "".join(p.text)


def test_leaderboard_of_a_missing_folder_is_a_usage_error(tmp_path):
    assert cli.main(["leaderboard", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
