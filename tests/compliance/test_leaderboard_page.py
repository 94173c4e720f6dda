"""The leaderboard page: a bar chart per board, the Server p99 column and the speed-up over the
reference, rendered in headless Chromium without an error; the checker stays light."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compliance import leaderboard
from tests.chromium import render
from tests.compliance.mutate import apply

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
BOARDS = [f"{b} / {s} / closed" for b in ("nano-codegen", "nano-planner", "nano-react")
          for s in ("Offline", "Server")]


def _course(tmp_path: Path, name: str) -> Path:
    """A folder with one entry: the smoke submission, submitted by `name`."""
    course = tmp_path / "course"
    shutil.copytree(SMOKE, course / name)
    for b in ("nano-react", "nano-codegen", "nano-planner"):
        for s in ("Offline", "Server"):
            apply(course / name, {"op": "json_set", "pointer": ["submitter"], "value": name,
                                  "path": f"results/cpu/{b}/{s}/measurements.json"})
    return course


def _detail(bench: str, scenario: str) -> str:
    return (SMOKE / f"results/cpu/{bench}/{scenario}/performance/run_1/"
            "mlperf_log_detail.txt").read_text()


def test_the_page_has_a_chart_per_board_p99_and_speedups_and_renders_in_chromium(tmp_path):
    out = tmp_path / "board"
    leaderboard.build_leaderboard(_course(tmp_path, "alice"), out, "smoke", 1, replay=0)
    data = json.loads((out / "leaderboard.json").read_text())
    assert list(data["boards"]) == BOARDS
    refs = leaderboard.load_rules().checker["reference_results"]
    for key, rows in data["boards"].items():
        bench, scenario, _ = key.split(" / ")
        row = rows[0]
        assert data["references"][key]["value"] == refs[bench][scenario]
        assert "rules.yaml" in data["references"][key]["source"]
        assert row["speedup"] == round(row["value"] / refs[bench][scenario], 3)
        if scenario == "Server":  # LoadGen's p99, as logged
            ns = round(row["server_p99_ms"] * 1e6)
            logged = f'"result_99.00_percentile_latency_ns", "value": {ns},'
            assert logged in _detail(bench, scenario)
        else:
            assert row["server_p99_ms"] is None
    html = (out / "index.html").read_text().replace("<wbr>", "")  # break hints in headers
    assert html.count("<th>server_p99_ms</th>") == 3 and html.count("<th>speedup</th>") == 6
    page = render(out / "index.html")
    assert page["errors"] == []
    assert page["images"] == []  # the charts are inline SVG: nothing to fail to load
    assert len(page["svgs"]) == len(BOARDS)
    assert all(s["width"] >= 500 and s["height"] >= 80 for s in page["svgs"]), page["svgs"]


def test_the_name_reference_alone_does_not_make_an_entry_the_baseline(tmp_path):
    out = tmp_path / "board"
    leaderboard.build_leaderboard(_course(tmp_path, "reference"), out, "smoke", 1, replay=0)
    data = json.loads((out / "leaderboard.json").read_text())
    assert not data["boards"] and [i["submission"] for i in data["invalid"]] == ["reference"]
    assert "committed reference" in data["invalid"][0]["reasons"][0]


def test_the_committed_reference_on_a_board_is_its_unranked_baseline(tmp_path, monkeypatch):
    monkeypatch.setattr(leaderboard, "REFERENCE_DIR", SMOKE)  # the smoke run stands in for it
    out = tmp_path / "board"
    leaderboard.build_leaderboard(_course(tmp_path, "reference"), out, "smoke", 1, replay=0)
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["summary"] == {"ranked": 0, "baseline": "reference", "flagged": 0,
                               "invalid": 0}
    for key, rows in data["boards"].items():
        assert rows[0]["baseline"] and rows[0]["rank"] is None and rows[0]["speedup"] == 1.0
        assert "baseline row" in data["references"][key]["source"]
    assert "Speed-ups are over" in (out / "index.html").read_text()


def test_importing_the_checker_pulls_in_neither_matplotlib_nor_torch():
    code = ("import sys, compliance.cli, compliance.leaderboard; "
            "print(sorted({'matplotlib', 'torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# The page's states, from data shaped as collect() returns it (no check needed: fast).
LONG = ("B701: needs reproduction (far beyond the reference on comparable hardware); S202: "
        "hardware declaration override (ALLOW_MISMATCH); T605: warning " + "x" * 120)
PROBE = """(() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const clipped = [...document.querySelectorAll('td, th')]
    .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.slice(0, 40));
  return JSON.stringify({
    overflow: document.documentElement.scrollWidth - window.innerWidth, clipped,
    summary: (document.getElementById('summary') || {}).textContent || '',
    legend: !!document.getElementById('legend'),
    empty: (document.getElementById('empty') || {}).textContent || '',
    baseline: [...document.querySelectorAll('tr.baseline td.rank')].map(c => c.textContent),
    details: [...document.querySelectorAll('details')].map(d => ({
      summary: d.querySelector('summary').textContent,
      rows: d.querySelectorAll('table.findings tbody tr:not(.follow), tr.follow td a').length,
      text: d.textContent})),
    links: [...document.querySelectorAll('a[href^="explain.html#"]')]
      .map(a => a.getAttribute('href').slice(13))});
})()"""


def _row(name, rank, value, notes="", baseline=False):
    return {"rank": rank, "submission": name, "system": "cpu", "system_name": "a laptop",
            "accelerator": None, "benchmark": "nano-react", "scenario": "Offline",
            "division": "closed", "metric": "episodes_per_second", "value": value,
            "speedup": round(value / 68.3, 3), "server_p99_ms": None,
            "quality_metric": "exact_match", "quality": 0.998, "notes": notes,
            "baseline": baseline}


def _finding(rule, message, file="", expected="", found="", hint=""):
    return {"rule": rule, "severity": "error", "file": file, "location": "", "message": message,
            "expected": expected, "found": found, "hint": hint}


def _data(boards=True) -> dict:
    key = "nano-react / Offline / closed"
    trunc = [_finding("L104", "archive member refused: archive unreadable: EOFError",
                      "trudy.tar.gz", hint="archive the directory again")]
    trunc += [_finding("L101", "required file is missing", f"results/cpu/nano-planner/Server/"
                       f"f{i}.txt", "a regular file", "missing") for i in range(7)]
    invalid = [{"submission": "trudy", "n_errors": 8, "findings": trunc,
                "reasons": [f"{f['rule']}: {f['message']}" for f in trunc]},
               {"submission": "mallory", "n_errors": 1, "findings": [_finding(
                   "G307", "measurements.json contradicts the detail log",
                   "results/cpu/nano-react/Offline/measurements.json", "68.3", "1e9",
                   "never edit measurements.json")], "reasons": ["G307: ..."]}]
    flagged = [{"submission": n, "members": ["alice", "bob"], "of_reference": True,
                "reason": "B702: a copy of the committed reference submission's runs; copy "
                          "group: alice, bob and the reference: identical or near-identical "
                          "runs", "findings": [_finding("B702", "copy", "", "runs of your own",
                                                        "the same runs as bob")]}
               for n in ("alice", "bob")]
    rows = [_row("reference", None, 68.3, "baseline: the committed reference submission "
                 "(not ranked)", baseline=True), _row("carol", 1, 80.1, LONG),
            _row("dave-with-a-rather-long-submitter-name-" + "y" * 40, 2, 20.5)]
    return {"profile": "official", "boards": {key: rows} if boards else {},
            "references": {key: {"value": 68.3, "lower_is_better": False,
                                 "source": "the baseline row"}} if boards else {},
            "flagged": flagged, "invalid": invalid}


@pytest.mark.parametrize("state", ["ranked", "empty"])
def test_each_state_of_the_page_renders_whole_at_1280_px(state, tmp_path):
    from compliance.explain import explain_html
    data = _data(boards=state == "ranked")
    (tmp_path / "index.html").write_text(leaderboard.to_html(data))
    (tmp_path / "explain.html").write_text(explain_html())
    shots = ROOT / "build/screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page = render(tmp_path / "index.html", probe=PROBE, screenshot=shots / f"board-{state}.png")
    p = page["probe"]
    assert page["errors"] == []
    assert p["overflow"] <= 0 and p["clipped"] == [], p        # nothing cut at 1280 px
    assert "0 ranked" not in p["summary"] if state == "ranked" else "0 ranked" in p["summary"]
    assert "2 flagged" in p["summary"] and "2 invalid" in p["summary"]
    assert p["legend"]
    trudy = next(d for d in p["details"] if d["summary"].startswith("trudy"))
    assert "(8 errors" in trudy["summary"] and "7 follow-on findings" in trudy["text"]
    assert all(f"f{i}.txt" in trudy["text"] for i in range(7))  # all 8 listed, none dropped
    assert "archive the directory again" in trudy["text"]       # the hint
    mallory = next(d for d in p["details"] if d["summary"].startswith("mallory"))
    assert "68.3" in mallory["text"] and "1e9" in mallory["text"]   # expected and found
    flagged = [d for d in p["details"] if d["summary"].startswith(("alice", "bob"))]
    assert len(flagged) == 2 and all("alice, bob" in d["summary"] for d in flagged)
    anchors = set(re.findall(r'id="([A-Z][0-9]{3})"', explain_html()))
    assert p["links"] and set(p["links"]) <= anchors, set(p["links"]) - anchors
    if state == "ranked":
        assert p["baseline"] == ["\u25c6 baseline"] and p["empty"] == ""
    else:
        assert p["baseline"] == [] and p["empty"].startswith("No valid entries")
    png = (shots / f"board-{state}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1280


def test_the_markdown_lists_every_error_and_the_summary():
    md = leaderboard.to_markdown(_data())
    # the baseline is not counted as ranked
    assert "2 ranked, 2 flagged, 2 invalid (baseline: the committed reference)" in md
    assert md.count("required file is missing") == 7 and "(8 errors)" in md
    assert "(1 error)" in md and "1 errors" not in md
    assert "**No valid entries**" in leaderboard.to_markdown(_data(boards=False))
