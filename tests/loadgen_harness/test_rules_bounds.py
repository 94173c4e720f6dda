"""rules.yaml's episode bounds (max_steps, max_step_tokens) and sandbox limits are what the
harness runs and what the checker holds traces to (T603): change them in a copy of rules.yaml
and both sides follow."""
from pathlib import Path

import yaml

from compliance.check import check_path
from loadgen_harness.sut import EpisodeFactory
from reference.codegen.agent import MAX_ATTEMPTS
from reference.codegen.agent import MAX_STEP_TOKENS as CODEGEN_STEP_TOKENS
from reference.codegen.sandbox import DEFAULT_LIMITS
from reference.grading import Grader, load_tasks
from reference.react.agent import MAX_STEP_TOKENS, MAX_STEPS
from reference.rules import RULES_PATH, load_rules

SMOKE = Path(__file__).resolve().parents[1] / "fixtures" / "smoke_submission"


def _rules_copy(tmp_path: Path, **changes):
    """rules.yaml with benchmark fields changed: nano_react={"max_steps": 2}, sandbox={...}."""
    doc = yaml.safe_load(RULES_PATH.read_text())
    for key, value in changes.items():
        if key == "sandbox":
            doc["sandbox"].update(value)
        else:
            doc["benchmarks"][key.replace("_", "-")].update(value)
    for b in doc["benchmarks"].values():  # relative paths: keep them pointing into the tree
        for key in ("eval_set", "reference_checkpoint", "reference_results"):
            b[key] = str(RULES_PATH.parent / b[key])
        for s in (b.get("splits") or {}).values():
            for key in ("eval_set", "reference_results"):
                s[key] = str(RULES_PATH.parent / s[key])
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_rules(path)


def _t603(rules) -> list[str]:
    report = check_path(SMOKE, "smoke", rules=rules)
    return [f.message for f in report.findings if f.rule == "T603"]


def test_a_changed_max_steps_bounds_both_workloads_and_the_checker(tmp_path):
    rules = _rules_copy(tmp_path, nano_react={"max_steps": 2}, nano_codegen={"max_steps": 1})
    react = rules.benchmark("nano-react")
    factory = EpisodeFactory(rules, "nano-react")
    env = factory(load_tasks("nano-react", react.eval_set)[0])
    for _ in range(2):
        env.step("Thought: again.\nAction: search\nAction Input: x\n")
    assert env.done and env.result.stop_reason == "max_steps" and len(env.result.steps) == 2
    factory.close()
    codegen = rules.benchmark("nano-codegen")
    factory = EpisodeFactory(rules, "nano-codegen", verifier_workers=1)
    try:
        env = factory(load_tasks("nano-codegen", codegen.eval_set)[0])
        env.step("Program:\nresult = 14\nEnd\n")
        assert env.done and env.result.stop_reason == "max_attempts"
    finally:
        factory.close()
    # the committed smoke submission ran with 8 steps: under this copy its traces break T603
    assert "more steps than max_steps" in _t603(rules)


def test_a_changed_max_step_tokens_bounds_the_engine_and_the_checker(tmp_path):
    rules = _rules_copy(tmp_path, nano_react={"max_step_tokens": 12})
    factory = EpisodeFactory(rules, "nano-react")
    env = factory(load_tasks("nano-react", rules.benchmark("nano-react").eval_set)[0])
    factory.close()
    assert env.max_step_tokens == 12  # the decoding loops cut a step there
    assert "a step generated more tokens than max_step_tokens" in _t603(rules)
    assert _t603(load_rules()) == []  # and the committed rules accept the honest run


def test_the_sandbox_limits_reach_the_verifier_and_the_checker(tmp_path):
    rules = _rules_copy(tmp_path, sandbox={"max_output_chars": 3})
    codegen = rules.benchmark("nano-codegen")
    factory = EpisodeFactory(rules, "nano-codegen", verifier_workers=1)
    try:
        env = factory(load_tasks("nano-codegen", codegen.eval_set)[0])
        env.step("Program:\nresult = 'x' * 10\nEnd\n")
        assert env.result.attempts[0].result.kind == "output_too_large"
    finally:
        factory.close()
    with Grader(workers=1, limits=rules.sandbox) as g:
        assert g.verify("result = 'x' * 10", "xxxxxxxxxx").kind == "output_too_large"


def test_the_code_defaults_are_the_committed_rules():
    """The environments' own defaults (for tests and direct use) equal rules.yaml's numbers."""
    rules = load_rules()
    assert (rules.benchmark("nano-react").max_steps,
            rules.benchmark("nano-react").max_step_tokens) == (MAX_STEPS, MAX_STEP_TOKENS)
    assert (rules.benchmark("nano-codegen").max_steps,
            rules.benchmark("nano-codegen").max_step_tokens) == (MAX_ATTEMPTS, CODEGEN_STEP_TOKENS)
    assert dict(rules.sandbox) == DEFAULT_LIMITS
