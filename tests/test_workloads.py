"""The workload registry: the two built-in benchmarks, a clear error for an unknown one, and a
toy third workload that runs an episode, an evaluation and a LoadGen run without any change
outside its own module and a rules.yaml entry."""
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from reference.rules import RULES_PATH
from loadgen_harness.runner import run_test
from reference.engine import Engine
from reference.checkpoint import load_model
from reference.grading import Grader
from reference.episode import run_env
from reference.workloads import UnknownWorkload, get_workload

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def test_the_built_in_workloads_are_registered():
    assert get_workload("nano-react").answer == "final answer"
    assert get_workload("nano-codegen").answer == "program"


def test_a_benchmark_of_rules_yaml_is_found_by_name_alone():
    # nano-planner lives in its own package (rules.yaml `workload:`); any caller may name it
    assert get_workload("nano-planner").name == "nano-planner"


def test_an_unknown_benchmark_is_a_clear_error_listing_the_known_ones():
    with pytest.raises(UnknownWorkload, match="unknown benchmark 'nano-chess'; known: "
                                              "nano-react, nano-codegen, nano-planner"):
        get_workload("nano-chess")


@pytest.fixture
def toy(tmp_path):
    tasks = tmp_path / "echo.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"echo-{i}", "question": w, "answer": w}) + "\n"
                             for i, w in enumerate(WORDS)))
    doc = yaml.safe_load(RULES_PATH.read_text())
    for b in doc["benchmarks"].values():  # keep the built-ins' relative paths valid
        for key in ("eval_set", "reference_checkpoint", "reference_results"):
            b[key] = str(RULES_PATH.parent / b[key])
        b.pop("splits", None)
    doc["benchmarks"]["toy-echo"] = {
        **doc["benchmarks"]["nano-react"], "workload": "tests.toy_workload",
        "eval_set": str(tasks), "eval_set_size": len(WORDS),
        "eval_set_sha256": hashlib.sha256(tasks.read_bytes()).hexdigest(), "max_steps": 1}
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(doc))
    return get_workload("toy-echo", "tests.toy_workload"), tasks, rules


def test_a_toy_workload_runs_an_episode_an_evaluation_and_a_loadgen_run(tmp_path, toy,
                                                                        tiny_checkpoint):
    workload, tasks_path, rules = toy
    tasks = workload.load_tasks(tasks_path)
    model = load_model(tiny_checkpoint)
    with workload.episodes(max_steps=1) as make_env:
        res = run_env(model, make_env(tasks[0]))  # an episode
        assert res.stop_reason in ("final_answer", "context_full") and res.steps
        results = Engine(model, make_env, max_batch=4).run_all(tasks)  # an evaluation
    with Grader() as g:
        score = sum(g.correct("toy-echo", t, r.answer) for t, r in zip(tasks, results))
    assert 0 <= score <= len(tasks) and all(r.steps for r in results)
    spec = {"benchmark": "toy-echo", "rules": str(rules), "scenario": "Offline",
            "mode": "AccuracyOnly", "out_dir": str(tmp_path / "run"),
            "checkpoint": str(tiny_checkpoint), "eval_set": str(tasks_path), "settings": {},
            "workers": 1, "threads": 1}
    status = run_test(spec, timeout_s=120)  # a LoadGen run, in its child process
    assert status["ok"] and status["completed"] == len(WORDS)
    trace = (Path(spec["out_dir"]) / "agent_trace.jsonl").read_text().splitlines()
    assert sorted(json.loads(l)["task_id"] for l in trace) == sorted(t.id for t in tasks)
