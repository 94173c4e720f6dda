"""The leaderboard page: a bar chart per board, the Server p99 column and the speed-up over the
reference, rendered in headless Chromium without an error; the checker stays light."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    html = (out / "index.html").read_text()
    assert html.count("<th>server_p99_ms</th>") == 3 and html.count("<th>speedup</th>") == 6
    page = render(out / "index.html")
    assert page["errors"] == []
    assert page["images"] == []  # the charts are inline SVG: nothing to fail to load
    assert len(page["svgs"]) == len(BOARDS)
    assert all(s["width"] >= 500 and s["height"] >= 80 for s in page["svgs"]), page["svgs"]


def test_an_entry_named_reference_is_the_reference_of_its_boards(tmp_path):
    out = tmp_path / "board"
    leaderboard.build_leaderboard(_course(tmp_path, "reference"), out, "smoke", 1, replay=0)
    data = json.loads((out / "leaderboard.json").read_text())
    for key, rows in data["boards"].items():
        assert rows[0]["speedup"] == 1.0
        assert data["references"][key]["source"] == "the entry 'reference' on this board"
    assert "Speed-ups are over" in (out / "index.html").read_text()


def test_importing_the_checker_pulls_in_neither_matplotlib_nor_torch():
    code = ("import sys, compliance.cli, compliance.leaderboard; "
            "print(sorted({'matplotlib', 'torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
