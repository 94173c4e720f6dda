"""The generalisation split in the harness (issue 12): its own accuracy run and target."""
import json

import pytest

from reference.rules import load_rules
from loadgen_harness.submission import plan_runs
from reference.yamlio import load_yaml
from reference.grading import Grader, load_tasks
from reference.hashing import file_sha256

TUNING = {"benchmarks": {b: {s: {"offline_expected_qps": 10, "server_target_qps": 2,
                                 "single_stream_expected_latency_ms": 100}
                             for s in ("Offline", "Server")}
                         for b in ("nano-react", "nano-codegen")}}


@pytest.mark.parametrize("name", ["nano-react", "nano-codegen", "nano-planner"])
def test_each_benchmark_has_a_generalisation_split_matching_the_repository(name):
    b = load_rules().benchmark(name)
    split = b.splits["generalisation"]
    assert file_sha256(split.eval_set) == split.eval_set_sha256
    assert split.eval_set_sha256 == split.eval_set.with_suffix(".sha256").read_text().split()[0]
    tasks = load_tasks(name, split.eval_set)
    assert len(tasks) == split.eval_set_size >= 500
    rows = [json.loads(l) for l in split.reference_results.read_text().splitlines()]
    assert [r["id"] for r in rows] == [t.id for t in tasks]
    with Grader() as g:
        assert all(r["correct"] == g.correct(name, t, r["answer"]) for r, t in zip(rows, tasks))
    assert round(sum(r["correct"] for r in rows) / len(rows), 4) == split.quality_reference
    assert split.subset_target(range(len(rows))) == split.quality_target


def test_every_scenario_plans_an_accuracy_run_per_split():
    rules = load_rules()
    plans = plan_runs(rules, rules.profile("smoke"), ["nano-react"], ["Offline", "Server"], TUNING)
    acc = [(p.scenario, p.rel_dir, p.split) for p in plans if p.mode == "AccuracyOnly"]
    assert acc == [("Offline", "accuracy", None),
                   ("Offline", "accuracy/generalisation", "generalisation"),
                   ("Server", "accuracy", None),
                   ("Server", "accuracy/generalisation", "generalisation")]
    split_plan = next(p for p in plans if p.split)
    assert split_plan.settings["accuracy_sample_count_override"] == 100
    assert split_plan.label == "nano-react Offline accuracy (generalisation)"


def test_rules_without_splits_plan_no_extra_runs(tmp_path):
    import yaml
    doc = load_yaml(load_rules().path)
    for b in doc["benchmarks"].values():
        b.pop("splits", None)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    rules = load_rules(path)
    plans = plan_runs(rules, rules.profile("smoke"), ["nano-react"], ["Offline"], TUNING)
    assert [p.rel_dir for p in plans if p.mode == "AccuracyOnly"] == ["accuracy"]


def test_rules_md_states_each_splits_numbers():
    rules = load_rules()
    text = (rules.path.parent / "rules.md").read_text()
    for b in rules.benchmarks.values():
        for split in b.splits.values():
            for needle in [split.eval_set_sha256, f"{split.quality_reference:.4f}",
                           f"{split.quality_target:.4f}", f"{split.eval_set_size} tasks"]:
                assert needle in text, needle
