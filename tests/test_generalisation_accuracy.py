"""The committed checkpoints generalise (issue 12): their recorded answers on both frozen splits
reproduce, and the full splits reach the targets (slow)."""
import json

import pytest

from reference.evaluate import evaluate
from reference.checkpoint import load_model
from reference.react.tasks import GEN_PATH, load_generalisation_set
from reference.workloads import get_workload

MAX_STEPS = 8  # rules.yaml's bound for nano-react
REACT_RESULTS = GEN_PATH.parent / "reference_results_generalisation.jsonl"


@pytest.fixture(scope="module")
def react():
    return load_model(get_workload("nano-react").default_checkpoint)


def test_recorded_generalisation_answers_are_the_models(react):
    tasks = load_generalisation_set()[:12]
    _, rows = evaluate("nano-react", react, tasks, MAX_STEPS, batch=4)
    ref = [json.loads(l) for l in REACT_RESULTS.read_text().splitlines()[:12]]
    assert [r["answer"] for r in rows] == [r["answer"] for r in ref]


@pytest.mark.slow
def test_nano_react_generalisation_split_at_least_095(react):
    summary, _ = evaluate("nano-react", react, load_generalisation_set(), MAX_STEPS, batch=32)
    assert summary["exact_match"] >= 0.95, summary["accuracy_per_template"]


@pytest.mark.slow
def test_nano_codegen_generalisation_split_at_least_095():
    from reference.codegen.tasks import load_generalisation_set as load_code
    summary, _ = evaluate("nano-codegen",
                          load_model(get_workload("nano-codegen").default_checkpoint),
                          load_code(), 3, batch=32)
    assert summary["pass_within_bound"] >= 0.95, summary["accuracy_per_template"]
