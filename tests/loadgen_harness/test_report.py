"""The performance report: plots and page from a real submission, rendered in headless
Chromium; bad input is a clear error that leaves no page; hostile input stays text."""
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from loadgen_harness import report
from tests.chromium import render

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
SWEEP = ROOT / "tests/fixtures/report/sweep.json"  # a real sweep (see its own provenance)
PLOTS = [p[0] for p in report.PLOTS]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen_harness.report", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The report of the smoke submission with the committed sweep, built once by the CLI."""
    out = tmp_path_factory.mktemp("smoke") / "report"
    done = _cli(SMOKE, "--out", out, "--sweep-json", SWEEP)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def small(tmp_path) -> Path:
    """A submission holding only nano-react's Server run (quick to plot)."""
    sub = tmp_path / "sub"
    shutil.copytree(SMOKE / "results/cpu/nano-react/Server", sub / "results/cpu/nano-react/Server")
    shutil.copy(SMOKE / "submission.json", sub)
    return sub


def test_the_smoke_submission_report_renders_in_chromium_with_every_plot(built):
    summary = json.loads((built / "report.json").read_text())
    assert summary["plots"] == {p: "drawn" for p in PLOTS}
    assert {(r["benchmark"], r["scenario"]) for r in summary["runs"]} == {
        (b, s) for b in ("nano-react", "nano-codegen", "nano-planner")
        for s in ("Offline", "Server")}
    for p in PLOTS:
        assert (built / p).stat().st_size > 15_000, p  # a real picture, not an empty canvas
    page = render(built / "index.html")
    assert page["errors"] == []
    assert sorted(i["src"] for i in page["images"]) == sorted(PLOTS)
    for img in page["images"]:
        assert img["complete"] and img["width"] >= 600 and img["height"] >= 300, img
    assert not list(built.parent.glob(".report.*"))  # no staging directory left behind


def test_the_figures_are_the_submission_own(built):
    summary = json.loads((built / "report.json").read_text())
    by = {(r["benchmark"], r["scenario"]): r for r in summary["runs"]}
    detail = (SMOKE / "results/cpu/nano-react/Server/performance/run_1/"
              "mlperf_log_detail.txt").read_text()
    assert f'"value": {by[("nano-react", "Server")]["samples_per_second"]:g},' in detail
    trace = SMOKE / "results/cpu/nano-react/Offline/performance/run_1/agent_trace.jsonl"
    assert by[("nano-react", "Offline")]["episodes_read"] == len(trace.read_text().splitlines())
    assert by[("nano-react", "Offline")]["max_batch"] == 64
    assert summary["notes"] == []


def test_without_a_sweep_a_curve_is_one_point_or_absent_and_the_page_says_why(small, tmp_path):
    out = tmp_path / "report"
    assert report.main([str(small), "--out", str(out)]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary["plots"]["server_latency_qps.png"] == "drawn"
    assert summary["plots"]["throughput_batch.png"].startswith("no Offline run")
    html = (out / "index.html").read_text()
    assert html.count("No sweep was given") == 1 and "Not drawn: no Offline run" in html


@pytest.mark.parametrize("make", ["missing", "file", "empty", "garbage"])
def test_a_bad_results_dir_is_a_clear_error_and_leaves_no_page(tmp_path, make):
    bad = tmp_path / "sub"
    if make == "file":
        bad.write_text("not a directory")
    elif make == "empty":
        bad.mkdir()
    elif make == "garbage":
        (bad / "results/cpu/nano-react/Server/performance/run_1").mkdir(parents=True)
        (bad / "submission.json").write_text("{}")
        (bad / "results/cpu/nano-react/Server/performance/run_1/mlperf_log_detail.txt"
         ).write_bytes(b"\xff\xfe garbage")
    out = tmp_path / "out"
    done = _cli(bad, "--out", out)
    assert done.returncode == 2
    assert done.stderr.startswith("report: error: ") and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_a_bad_sweep_file_is_refused(tmp_path):
    bad = tmp_path / "sweep.json"
    doc = json.loads(SWEEP.read_text())
    doc["benchmarks"]["nano-react"]["server"][0]["p99_ms"] = -1
    bad.write_text(json.dumps(doc))
    done = _cli(SMOKE, "--out", tmp_path / "out", "--sweep-json", bad)
    assert done.returncode == 2 and "positive finite" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_sweep_of_an_unknown_benchmark_is_a_clear_error_before_any_run(tmp_path):
    done = _cli("--sweep", tmp_path / "sweep.json", "--benchmarks", "nano-nothing")
    assert done.returncode == 2 and "unknown benchmark 'nano-nothing'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "sweep.json").exists()


def test_a_directory_that_is_not_a_report_is_never_replaced(small, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert report.main([str(small), "--out", str(out)]) == 2
    assert (out / "thesis.tex").read_text() == "precious"
    assert report.main([str(small), "--out", str(tmp_path / "r")]) == 0
    assert report.main([str(small), "--out", str(tmp_path / "r")]) == 0  # a report: replaced


def test_hostile_names_stay_text_and_links_are_not_followed(small, tmp_path):
    sub = small
    (sub / "results/<img src=x onerror=alert(1)>").mkdir()
    outside = tmp_path / "outside"
    shutil.copytree(SMOKE / "results/cpu/nano-codegen/Offline", outside)
    (sub / "results/cpu/nano-codegen").mkdir()
    os.symlink(outside, sub / "results/cpu/nano-codegen/Offline")
    out = tmp_path / "out"
    assert report.main([str(sub), "--out", str(out)]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert [(r["benchmark"], r["scenario"]) for r in summary["runs"]] == [("nano-react", "Server")]
    assert any("not a plain directory name" in n for n in summary["notes"])
    assert any("a link on the way" in n for n in summary["notes"])
    p = _Tags()
    p.feed((out / "index.html").read_text())
    assert all(a.get("src") in PLOTS for t, a in p.tags if t == "img")
    assert "script" not in {t for t, _ in p.tags}


@pytest.mark.slow
def test_a_sweep_runs_real_loadgen_runs_and_the_report_draws_its_curves(small, tmp_path):
    sweep = tmp_path / "sweep.json"
    done = _cli("--sweep", sweep, "--benchmarks", "nano-codegen", "--batches", "4,16",
                "--tasks", "32", "--qps-factors", "0.5", "--server-seconds", "3")
    assert done.returncode == 0, done.stderr
    doc = report.read_sweep(sweep)
    part = doc["benchmarks"]["nano-codegen"]
    assert [p["max_batch"] for p in part["offline"]] == [4, 16] and len(part["server"]) == 1
    assert report.main([str(small), "--out", str(tmp_path / "r"), "--sweep-json", str(sweep)]) == 0
