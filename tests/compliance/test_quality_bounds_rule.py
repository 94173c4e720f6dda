"""Q409 on the real smoke submission: nano-planner's bad-task and completion rates, recomputed
from the accuracy trace, are held to rules.yaml's bounds (or, for a subset, to the reference's
own figures on the same samples when those are looser)."""
import dataclasses
import json
from pathlib import Path

from compliance.check import check_path
from reference.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
BENCH = "nano-planner"


def _rules_with(tmp_path, bounds, reference_rows=None):
    rules = load_rules()
    bench = rules.benchmark(BENCH)
    ref = bench.reference_results
    if reference_rows is not None:
        ref = tmp_path / "reference_results.jsonl"
        rows = [json.loads(line) for line in bench.reference_results.read_text().splitlines()]
        ref.write_text("".join(json.dumps(reference_rows(r)) + "\n" for r in rows))
    bench = dataclasses.replace(bench, quality_bounds=bounds, reference_results=ref)
    return dataclasses.replace(rules, benchmarks={**rules.benchmarks, BENCH: bench})


def _bad_task_rate():
    doc = json.loads((SMOKE / f"results/cpu/{BENCH}/Offline/accuracy/accuracy.json").read_text())
    return doc["bounds"]["bad_task_rate"]["value"]


def test_the_smoke_submission_states_and_meets_its_planner_bounds():
    assert _bad_task_rate() > 0  # the reference makes a few bad steps on these samples
    assert check_path(SMOKE, "smoke").valid


def test_a_subset_worse_than_the_bound_and_than_the_reference_on_it_fails(tmp_path):
    tight = {"bad_task_rate": ("max", 0.0), "completion_rate": ("min", 0.98)}
    # the reference's own figure on the same samples loosens the bound: still valid
    assert check_path(SMOKE, "smoke", rules=_rules_with(tmp_path, tight)).valid
    # a reference that made no bad step there leaves the bound as stated: Q409 alone
    clean = _rules_with(tmp_path, tight, lambda r: {**r, "bad_steps": 0})
    report = check_path(SMOKE, "smoke", rules=clean)
    assert report.rule_ids() == {"Q409"}, [f.to_dict() for f in report.findings]
    assert "bad_task_rate outside its bound" in report.findings[0].message

