"""The SUT adapters through the real LoadGen, in child processes, on a tiny real model."""
import json
from pathlib import Path

import pytest

from loadgen_harness.logs import accuracy_from_log, read_accuracy_log, read_detail
from loadgen_harness.runner import RunError, run_test
from loadgen_harness.trace import trace_validator
from reference.react.tasks import load_eval_set


def spec(tmp_path, ckpt, eval_set, scenario, mode, settings=None, **extra):
    return {"benchmark": "nano-react", "scenario": scenario, "mode": mode,
            "out_dir": str(tmp_path / f"{scenario}-{mode}"), "checkpoint": str(ckpt),
            "eval_set": str(eval_set), "settings": settings or {}, "workers": 2, "threads": 1,
            **extra}


@pytest.mark.parametrize("scenario", ["Offline", "Server", "SingleStream"])
def test_accuracy_run_logs_every_sample_once_with_its_answer(tmp_path, tiny_checkpoint,
                                                              small_eval_set, scenario):
    settings = {"server_target_qps": 50.0, "server_target_latency_ns": 10**9,
                "single_stream_expected_latency_ns": 10**6} if scenario != "Offline" else {}
    s = spec(tmp_path, tiny_checkpoint, small_eval_set, scenario, "AccuracyOnly", settings)
    status = run_test(s, timeout_s=120)
    out = Path(s["out_dir"])
    assert status["ok"] and status["completed"] == 12
    entries = read_accuracy_log(out / "mlperf_log_accuracy.json")
    assert sorted(e["qsl_idx"] for e in entries) == list(range(12))
    trace = [json.loads(l) for l in (out / "agent_trace.jsonl").read_text().splitlines()]
    assert len(trace) == 12
    for rec in trace:
        assert not list(trace_validator().iter_errors(rec))
    # the payload is the final answer: the accuracy log and the trace agree sample by sample
    answers = {r["qsl_idx"]: r["answer"] or "" for r in trace}
    assert all(e["answer"] == answers[e["qsl_idx"]] for e in entries)
    acc = accuracy_from_log(out / "mlperf_log_accuracy.json", load_eval_set(small_eval_set),
                            "nano-react")
    assert acc["n_unique"] == 12 and acc["duplicated"] == 0


def test_drafts_through_loadgen_give_the_same_episodes(tmp_path, tiny_checkpoint, small_eval_set):
    """The run spec's draft reaches the workers' engines (one draft table shared by both) and
    changes no token of any episode."""
    traces = []
    for draft in (0, 8):
        s = spec(tmp_path / str(draft), tiny_checkpoint, small_eval_set, "Offline",
                 "AccuracyOnly", draft=draft)
        status = run_test(s, timeout_s=120)
        assert status["completed"] == 12 and status["tokens_decoded"] > 0
        assert (status["tokens_drafted"] > 0) == (draft > 0)
        lines = (Path(s["out_dir"]) / "agent_trace.jsonl").read_text().splitlines()
        recs = [json.loads(line) for line in lines]
        traces.append(sorted((r["qsl_idx"], r["answer"], r["stop_reason"],
                              [st["text"] for st in r["steps"]]) for r in recs))
    assert traces[0] == traces[1]


def test_offline_performance_run_reports_throughput(tmp_path, tiny_checkpoint, small_eval_set):
    s = spec(tmp_path, tiny_checkpoint, small_eval_set, "Offline", "PerformanceOnly",
             {"min_duration_ms": 500, "min_query_count": 24, "offline_expected_qps": 20.0})
    run_test(s, timeout_s=120)
    d = read_detail(Path(s["out_dir"]) / "mlperf_log_detail.txt")
    assert d["result_samples_per_second"] > 0
    assert d["effective_scenario"] == "Offline" and d["__errors__"] == []


def test_sut_exception_ends_the_run_with_a_clear_error(tmp_path, tiny_checkpoint, small_eval_set):
    s = spec(tmp_path, tiny_checkpoint, small_eval_set, "Offline", "AccuracyOnly", fault="raise")
    with pytest.raises(RunError, match="SUT worker failed: RuntimeError: injected SUT fault"):
        run_test(s, timeout_s=120)


def test_sample_never_completed_is_killed_by_the_watchdog(tmp_path, tiny_checkpoint,
                                                          small_eval_set):
    s = spec(tmp_path, tiny_checkpoint, small_eval_set, "Offline", "AccuracyOnly", fault="hang")
    with pytest.raises(RunError, match="watchdog"):
        run_test(s, timeout_s=15)


def test_unknown_loadgen_setting_fails_the_run(tmp_path, tiny_checkpoint, small_eval_set):
    s = spec(tmp_path, tiny_checkpoint, small_eval_set, "Offline", "AccuracyOnly",
             {"no_such_setting": 1})
    with pytest.raises(RunError, match="no_such_setting"):
        run_test(s, timeout_s=120)
