"""A student's first hour (issues 28 and 29): the reference submission is never overwritten by
accident, a run for some benchmarks keeps the others, a tuning this machine cannot run is one
clear line before any run, and a Server rate is offered from what this machine measured."""
import json
import os
from pathlib import Path

import pytest

from loadgen_harness import bench, submission, system
from loadgen_harness.submission import ServerOffer, SubmissionError
from reference.rules import SCENARIOS, load_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules()
CPU = system.load_system("cpu")


def _probe(cores=2, gpus=()):
    return {"host_processor_core_count": cores, "accelerators": list(gpus)}


@pytest.mark.parametrize("name", ["reference", "Reference", "REFERENCE"])
def test_the_reference_submission_needs_an_explicit_flag(tmp_path, capsys, name):
    rc = submission.main(["--profile", "smoke", "--submitter", name, "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "committed reference submission" in err and "REFERENCE=1" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a b", "x" * 65])
def test_a_bad_submitter_name_is_one_line(tmp_path, capsys, name):
    assert submission.main(["--profile", "smoke", "--submitter", name,
                            "--out", str(tmp_path)]) == 2
    assert "bad SUBMITTER" in capsys.readouterr().err


def test_the_default_submitter_is_the_user_not_the_reference(monkeypatch):
    monkeypatch.delenv("SUBMITTER", raising=False)
    assert submission._user() != "reference" and submission.NAME.fullmatch(submission._user())
    text = (ROOT / "Makefile").read_text()
    assert "SUBMITTER ?= reference" not in text and "--as-reference" in text


@pytest.mark.parametrize("edit, said", [
    (lambda t: t["benchmarks"].__setitem__("nano-codgen", t["benchmarks"]["nano-codegen"]),
     "tuning.benchmarks.nano-codgen: no such benchmark (did you mean nano-codegen?)"),
    (lambda t: t.__setitem__("device", "cuda"), "cuda, but this machine has no GPU"),
    (lambda t: t.__setitem__("workers", 8),
     "8 workers x 1 threads = 8 cores, but the machine has 2"),
    (lambda t: t["benchmarks"]["nano-react"].__setitem__("Sever", {}), "no such scenario"),
])
def test_a_tuning_this_machine_cannot_run_is_one_sentence(edit, said):
    doc = json.loads(json.dumps(CPU))
    edit(doc["tuning"])
    problems = system.tuning_problems(doc, _probe(), RULES.benchmarks, SCENARIOS)
    assert len(problems) == 1 and said in problems[0]
    assert system.tuning_problems(CPU, _probe(), RULES.benchmarks, SCENARIOS) == []


def test_the_pre_check_fails_on_what_the_submission_would_refuse(tmp_path, monkeypatch, capsys):
    doc = (ROOT / "systems/cpu.yaml").read_text().replace("workers: 2", "workers: 8")
    (tmp_path / "mine.yaml").write_text(doc)
    load = system.load_system
    monkeypatch.setattr(system, "load_system", lambda name: load(name, tmp_path))
    monkeypatch.setattr(submission, "load_system", lambda name: load(name, tmp_path))
    assert system.main(["mine"]) == 1
    assert "error: systems/mine.yaml: tuning uses 8 workers" in capsys.readouterr().err
    assert submission.main(["--system", "mine", "--profile", "smoke", "--submitter", "alice",
                            "--out", str(tmp_path / "out")]) == 2
    assert "cannot run here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- keeping results: one benchmark at a time ---------------------------------------------

def _result(root: Path, system_name: str, bench_name: str, scen: str, tag: str) -> None:
    d = root / "results" / system_name / bench_name / scen
    d.mkdir(parents=True)
    (d / "measurements.json").write_text(json.dumps({"tag": tag}))


def _submission(final: Path, profile: str, doc: dict, results) -> None:
    for b, s in results:
        _result(final, "cpu", b, s, "old")
    (final / "systems").mkdir(parents=True)
    (final / "systems/cpu.json").write_text(json.dumps({"system": "cpu", **doc}))
    (final / "submission.json").write_text(json.dumps(
        {"schema_version": 1, "systems": {"cpu": {"profile": profile}}}))


def test_a_run_for_one_benchmark_keeps_the_others(tmp_path):
    final, staging = tmp_path / "closed/alice", tmp_path / ".staging"
    _submission(final, "smoke", CPU, [("nano-react", "Offline"), ("nano-react", "Server")])
    _result(staging, "cpu", "nano-codegen", "Offline", "new")
    _result(staging, "cpu", "nano-react", "Server", "new")
    (staging / "systems").mkdir()
    (staging / "systems/cpu.json").write_text("{}")
    (staging / "code").mkdir()
    replace = submission.must_replace(final, "cpu", RULES.profile("smoke"), CPU, False)
    assert replace is False
    submission.swap_in(staging, final, "cpu", replace)
    tags = {str(p.parent.relative_to(final / "results/cpu")): json.loads(p.read_text())["tag"]
            for p in final.rglob("measurements.json")}
    assert tags == {"nano-react/Offline": "old", "nano-react/Server": "new",
                    "nano-codegen/Offline": "new"}
    assert not [p for p in final.rglob(".old-*")]


def test_smoke_never_replaces_official_results(tmp_path):
    final = tmp_path / "closed/alice"
    _submission(final, "official", CPU, [("nano-react", "Offline")])
    with pytest.raises(SubmissionError, match="holds official results"):
        submission.must_replace(final, "cpu", RULES.profile("smoke"), CPU, False)
    assert submission.must_replace(final, "cpu", RULES.profile("smoke"), CPU, True) is True


def test_official_results_replace_smoke_ones_whole(tmp_path, capsys):
    final = tmp_path / "closed/alice"
    _submission(final, "smoke", CPU, [("nano-react", "Offline")])
    assert submission.must_replace(final, "cpu", RULES.profile("official"), CPU, False)
    assert "replaced by this official run" in capsys.readouterr().err


@pytest.mark.parametrize("edit, said", [
    (lambda d: d["tuning"].__setitem__("workers", 1), "tuning (workers"),
    (lambda d: d["tuning"]["benchmarks"]["nano-react"]["Offline"].__setitem__("max_batch", 8),
     "tuning.benchmarks.nano-react"),
    (lambda d: d["declaration"].__setitem__("notes", "mine"), "declaration"),
])
def test_a_changed_system_file_does_not_merge_silently(tmp_path, edit, said):
    final = tmp_path / "closed/alice"
    _submission(final, "smoke", CPU, [("nano-react", "Offline")])
    doc = json.loads(json.dumps(CPU))
    edit(doc)
    with pytest.raises(SubmissionError, match="changed since") as e:
        submission.must_replace(final, "cpu", RULES.profile("smoke"), doc, False)
    assert said in str(e.value) and "REPLACE=1" in str(e.value)
    # another benchmark's tuning may change: its results are not kept
    doc = json.loads(json.dumps(CPU))
    doc["tuning"]["benchmarks"]["nano-codegen"]["Offline"]["max_batch"] = 8
    assert submission.must_replace(final, "cpu", RULES.profile("smoke"), doc, False) is False


def test_an_unreadable_earlier_submission_is_never_merged_into(tmp_path):
    final = tmp_path / "closed/alice"
    _submission(final, "smoke", CPU, [("nano-react", "Offline")])
    (final / "submission.json").write_text("{not json")
    with pytest.raises(SubmissionError, match="cannot be read"):
        submission.must_replace(final, "cpu", RULES.profile("smoke"), CPU, False)


# --- the Server rate offered (issue 28) ---------------------------------------------------

def test_smoke_offers_a_share_of_the_offline_rate_measured_on_this_machine():
    smoke, official = RULES.profile("smoke"), RULES.profile("official")
    tuning = {"server_target_qps": 25}
    busy = ServerOffer.of(smoke, tuning, offline_measured=30.0)
    assert busy.offered_qps == pytest.approx(30.0 * smoke.server_qps_of_offline)
    assert "Offline rate measured" in busy.basis and busy.record()["offline_measured_qps"] == 30
    idle = ServerOffer.of(smoke, tuning, offline_measured=1000.0)
    assert idle.offered_qps == pytest.approx(25 * smoke.server_qps_fraction)
    unmeasured = ServerOffer.of(smoke, tuning, offline_measured=None)
    assert "no Offline run" in unmeasured.basis
    assert ServerOffer.of(official, tuning, offline_measured=5.0).offered_qps == 25
    assert not ServerOffer.of(official, tuning, 5.0).adaptive


def test_an_offer_stretches_its_plans_and_records_a_lowering():
    plans = submission.plan_runs(RULES, RULES.profile("smoke"), ["nano-react"], ["Server"],
                                 CPU["tuning"])
    perf = next(p for p in plans if p.rel_dir == "performance/run_1")
    before = perf.expected_s
    offer = ServerOffer.of(RULES.profile("smoke"), {"server_target_qps": 25}, 10.0)
    offer.apply(perf)
    assert perf.settings["server_target_qps"] == offer.offered_qps == 3.0
    assert perf.expected_s > before
    offer.lower(1.5, "p99 over the bound")
    offer.apply(perf)
    assert perf.settings["server_target_qps"] == 1.5 and "lowered to 1.5/s" in offer.basis


def test_an_invalid_server_run_gets_one_line_with_a_measured_suggestion():
    offer = ServerOffer.of(RULES.profile("official"), {"server_target_qps": 25}, None)
    detail = {"result_validity": "INVALID", "result_99.00_percentile_latency_ns": 14267e6,
              "result_max_latency_ns": 20000e6, "result_overlatency_query_count": 90,
              "result_query_count": 1500}
    line = submission.server_advice("nano-react", detail, 8000 * 10**6, offer, "cpu")
    assert "\n" not in line
    for part in ("nano-react Server is INVALID", "offered 25/s", "p99 14,267 ms",
                 "8,000 ms bound", "try server_target_qps: 11.21 in systems/cpu.yaml"):
        assert part in line, part
    within = {"result_99.00_percentile_latency_ns": 7000e6}
    assert submission.suggested_server_qps(25, within, 8000e6) is None
    assert submission.suggested_server_qps(25, {}, 8000e6) is None


def test_queries_over_the_bound_that_early_stopping_counts_get_a_lower_rate_too():
    """The CI failure of stop 37: p99 1,498 ms within the 1,600 ms bound, yet INVALID, because
    a few of 460 queries were over the bound and early stopping allows none at that count."""
    offer = ServerOffer.of(RULES.profile("official"), {"server_target_qps": 11.67}, None)
    detail = {"result_validity": "INVALID", "result_99.00_percentile_latency_ns": 1498e6,
              "result_max_latency_ns": 1900e6, "result_overlatency_query_count": 3,
              "result_query_count": 460}
    line = submission.server_advice("nano-codegen", detail, 1600 * 10**6, offer, "cpu")
    for part in ("p99 1,498 ms within the 1,600 ms bound", "3 of 460 queries over it",
                 "early stopping", "try server_target_qps: 7.86 in systems/cpu.yaml"):
        assert part in line, part
    assert submission.suggested_server_qps(11.67, detail, 1600e6) == 7.86
    # a huge outlier lowers the rate by half at most; no query over the bound: no suggestion
    assert submission.suggested_server_qps(10, {**detail, "result_max_latency_ns": 9e10},
                                           1600e6) == 5.0
    assert submission.suggested_server_qps(10, {**detail, "result_overlatency_query_count": 0,
                                                "result_max_latency_ns": 1500e6},
                                           1600e6) is None


def test_the_profiler_lines_never_reach_the_terminal(capfd):
    with bench._quiet_fds():
        os.write(1, b"USDT: profiler_start\n")
        os.write(2, b"USDT: profiler_stop\n")
    print("after")
    out, err = capfd.readouterr()
    assert "USDT" not in out + err and "after" in out


def test_lines_that_are_not_on_a_terminal_are_never_wrapped(capsys):
    long = "results/closed/alice/results/cpu/nano-react/Server/performance/" + "x" * 200
    submission.console().print(long)
    assert long in capsys.readouterr().out


def test_interrupting_bench_is_one_line(monkeypatch, capsys):
    def interrupted(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(bench, "_main", interrupted)
    assert bench.main([]) == 130
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "interrupted" in err



def test_a_merged_re_run_keeps_the_first_runs_date(tmp_path):
    """The checker's G312 holds every run to start after submission.json's date: a re-run
    that keeps earlier results must not move that date past them (a replacing one does)."""
    final = tmp_path / "closed/alice"
    final.mkdir(parents=True)
    git = {"commit": "c" * 40, "dirty": False}
    smoke = RULES.profile("smoke")
    submission.update_index(final, "cpu", smoke, git, "2026-12-07T10:00:00+00:00")
    submission.update_index(final, "cpu", smoke, git, "2026-12-07T11:00:00+00:00",
                             replace=False)
    entry = json.loads((final / "submission.json").read_text())["systems"]["cpu"]
    assert entry["created"] == "2026-12-07T10:00:00+00:00"
    submission.update_index(final, "cpu", smoke, git, "2026-12-07T12:00:00+00:00",
                             replace=True)
    entry = json.loads((final / "submission.json").read_text())["systems"]["cpu"]
    assert entry["created"] == "2026-12-07T12:00:00+00:00"
