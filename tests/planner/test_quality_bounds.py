"""nano-planner's bounded quality figures (rules.yaml `quality.bounds`): parsed from rules.yaml,
recomputed from logged steps, held to the bound (or, for a subset, the reference's figure on
the same samples when that is looser)."""
import json

import pytest

from reference.grading import bounded_quality
from reference.planner.schema import dump_step
from reference.planner.tasks import generate
from reference.rules import RulesError, load_rules
from reference.yamlio import load_yaml

BENCH = "nano-planner"
BOUNDS = {"bad_task_rate": ("max", 0.05), "completion_rate": ("min", 0.98)}


def _oracle_steps(n):
    """Frozen tasks with their oracle episodes as trace steps (texts only are scored)."""
    tasks, steps = [], {}
    for i, traj in enumerate(generate(20261214, n, prefix="planner-")):
        tasks.append(traj.task)
        steps[i] = [{"text": t} for r, t in traj.segments if r == "agent"]
    return tasks, steps


def _bad(steps):
    """The same episode with a step that does not advance the plan before its final answer."""
    extra = {"text": dump_step({"thought": "x", "task": "Look up the value of e",
                                "tool": "lookup"})}
    return steps[:-1] + [extra, steps[-1]]


def test_the_rules_state_the_planner_bounds():
    assert load_rules().benchmark(BENCH).quality_bounds == BOUNDS


@pytest.mark.parametrize("bound", [{"bad_task_rate": {"most": 0.05}},
                                   {"bad_task_rate": {"max": 0.05, "min": 0.0}},
                                   {"bad_task_rate": {"max": "low"}}, {"bad_task_rate": 0.05}])
def test_a_malformed_bound_is_a_rules_error(tmp_path, bound):
    import yaml
    doc = load_yaml(load_rules().path)
    doc["benchmarks"][BENCH]["quality"]["bounds"] = bound
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RulesError):
        load_rules(path)


def test_oracle_episodes_are_within_the_bounds_and_a_bad_step_is_counted(tmp_path):
    tasks, steps = _oracle_steps(20)
    got = bounded_quality(BENCH, BOUNDS, tasks, steps, tmp_path / "unused", len(tasks))
    assert got == {"bad_task_rate": {"value": 0.0, "max": 0.05, "ok": True},
                   "completion_rate": {"value": 1.0, "min": 0.98, "ok": True}}
    worse = {i: _bad(s) if i < 5 else s for i, s in steps.items()}
    got = bounded_quality(BENCH, BOUNDS, tasks, worse, tmp_path / "unused", len(tasks))
    tool = sum(len(s) - 1 for s in steps.values()) + 5
    assert got["bad_task_rate"] == {"value": round(5 / tool, 4), "max": 0.05, "ok": False}
    unfinished = {i: s[:-1] if i < 2 else s for i, s in steps.items()}  # no final answer
    got = bounded_quality(BENCH, BOUNDS, tasks, unfinished, tmp_path / "unused", len(tasks))
    assert got["completion_rate"] == {"value": 0.9, "min": 0.98, "ok": False}


def test_a_subset_is_held_to_the_looser_of_the_bound_and_the_reference_on_it(tmp_path):
    tasks, steps = _oracle_steps(20)
    worse = {i: _bad(s) if i < 5 else s for i, s in steps.items()}
    subset = {i: worse[i] for i in range(10)}
    ref = tmp_path / "reference_results.jsonl"

    def reference(bad_steps):
        ref.write_text("".join(json.dumps({"qsl_idx": i, "completed": True,
                                           "tool_steps": len(steps[i]) - 1,
                                           "bad_steps": bad_steps(i)}) + "\n" for i in range(20)))
    reference(lambda i: 1 if i < 5 else 0)   # the reference made the same mistakes
    got = bounded_quality(BENCH, BOUNDS, tasks, subset, ref, len(tasks))
    assert got["bad_task_rate"]["ok"] and got["bad_task_rate"]["max"] > 0.05
    reference(lambda i: 0)                   # it did not: the stated bound holds
    got = bounded_quality(BENCH, BOUNDS, tasks, subset, ref, len(tasks))
    assert not got["bad_task_rate"]["ok"] and got["bad_task_rate"]["max"] == 0.05
    # every sample scored: the stated bound, whatever the reference did
    reference(lambda i: 1 if i < 5 else 0)
    got = bounded_quality(BENCH, BOUNDS, tasks, worse, ref, len(tasks))
    assert not got["bad_task_rate"]["ok"] and got["bad_task_rate"]["max"] == 0.05
