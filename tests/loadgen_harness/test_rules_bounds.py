"""rules.yaml's max_steps is what bounds an episode in the harness (and what T603 checks)."""
from pathlib import Path

import yaml

from loadgen_harness.rules import RULES_PATH, load_rules
from loadgen_harness.sut import EpisodeFactory
from reference.grading import load_tasks


def _rules_copy(tmp_path: Path, react: int, codegen: int):
    doc = yaml.safe_load(RULES_PATH.read_text())
    doc["benchmarks"]["nano-react"]["max_steps"] = react
    doc["benchmarks"]["nano-codegen"]["max_steps"] = codegen
    for b in doc["benchmarks"].values():  # relative paths: keep them pointing into the tree
        for key in ("eval_set", "reference_checkpoint", "reference_results"):
            b[key] = str(RULES_PATH.parent / b[key])
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_rules(path)


def test_a_changed_max_steps_bounds_both_workloads(tmp_path):
    rules = _rules_copy(tmp_path, react=2, codegen=1)
    react = rules.benchmark("nano-react")
    env = EpisodeFactory("nano-react", max_steps=react.max_steps)(load_tasks("nano-react", react.eval_set)[0])
    for _ in range(2):
        env.step("Thought: again.\nAction: search\nAction Input: x\n")
    assert env.done and env.result.stop_reason == "max_steps" and len(env.result.steps) == 2
    codegen = rules.benchmark("nano-codegen")
    factory = EpisodeFactory("nano-codegen", max_steps=codegen.max_steps, verifier_workers=1)
    try:
        env = factory(load_tasks("nano-codegen", codegen.eval_set)[0])
        env.step("Program:\nresult = 14\nEnd\n")
        assert env.done and env.result.stop_reason == "max_attempts"
    finally:
        factory.close()


def test_the_committed_rules_give_the_documented_bounds():
    rules = load_rules()
    assert rules.benchmark("nano-react").max_steps == 8
    assert rules.benchmark("nano-codegen").max_steps == 3
