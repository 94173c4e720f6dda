"""The function-caller executor: it writes the translator's calls, refuses bad tasks, never
raises for what the planner or the model wrote, and drives real planner episodes to the same
answers as the translator."""
import pytest
import torch

from loadgen_harness import bench
from reference import evaluate
from reference.checkpoint import load_model
from reference.engine import Engine
from reference.model import GPT, GPTConfig
from reference.planner import caller as fc
from reference.planner.executor import BadTask
from reference.planner.workload import WORKLOAD


@pytest.fixture(scope="module")
def caller():
    torch.set_num_threads(1)
    return fc.load_caller()


def test_targets_are_the_translator_calls_or_the_refusal():
    assert fc.target_text("calculator", "Multiply 11 by 10") == "Call: 11 * 10\n"
    assert fc.target_text("calculator", "Subtract -3 from 5.") == "Call: 5 - (-3)\n"
    assert fc.target_text("lookup", "Count the characters in 'x'") == "No call\n"
    assert fc.target_text("nowhere", "Add 1 and 2") == "No call\n"


def test_training_trajectories_skip_excluded_requests():
    from itertools import islice
    first = {t.task.request for t in islice(fc.trajectories(1, set()), 60)}
    again = {t.task.request for t in islice(fc.trajectories(1, first), 60)}
    assert len(first) > 50 and not first & again
    pairs = list(islice(fc.examples(1, set()), 200))
    assert all(tool in ("calculator", "string_length", "lookup", "compare") for tool, _ in pairs)
    assert any(fc.target_text(*p) == "No call\n" for p in pairs)  # the detours' bad tasks


def test_the_reference_caller_writes_the_translator_calls(caller):
    for split in ("frozen", "generalisation"):
        pairs = fc.frozen_pairs(split)[::39]  # pairs alternate valid, bad: an odd stride takes both
        report = fc.agreement(caller, pairs)
        assert report["exact"] >= 0.97 and report["pairs"] > 100, report
        assert report["bad_tasks_refused"] >= 0.97, report


def test_refusals_and_garbage_are_bad_tasks_never_exceptions(caller):
    with pytest.raises(BadTask) as e:
        caller.translate("lookup", "Find the answer")
    assert e.value.kind == fc.REFUSED
    out = caller.execute("lookup", "Find the answer")
    assert out.status == "bad_task" and out.observation.startswith("Error: bad task:")
    torch.manual_seed(0)
    noise = fc.FunctionCaller(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, rope=True)).eval(),
                              max_tokens=12)
    with pytest.raises(BadTask) as e:
        noise.translate("calculator", "Add 1 and 2")
    assert e.value.kind == fc.GARBLED
    assert noise.execute("calculator", "Add 1 and 2").status == "bad_task"


def test_planner_episodes_with_the_caller_reach_the_translator_answers(caller):
    torch.set_num_threads(1)
    model = load_model(WORKLOAD.default_checkpoint)
    tasks = WORKLOAD.load_tasks()[:8]
    runs = {}
    for executor in WORKLOAD.executors:
        with WORKLOAD.episodes(max_steps=10, executor=executor) as make_env:
            runs[executor] = Engine(model, make_env, max_batch=8).run_all(tasks)
    assert [r.answer for r in runs["caller"]] == [r.answer for r in runs["translator"]]
    steps = [s for r in runs["caller"] for s in r.steps if s.tool is not None]
    assert steps and all(s.executor_ms > 0 for s in steps)
    with pytest.raises(ValueError, match="executor 'oracle'"):
        with WORKLOAD.episodes(max_steps=10, executor="oracle"):
            pass


def test_executor_option_is_refused_where_it_does_not_apply(capsys):
    with pytest.raises(SystemExit) as e:
        evaluate.main(["nano-react", "--executor", "caller", "--limit", "1"])
    assert e.value.code == 2 and "no executor choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["nano-planner", "--executor", "oracle", "--limit", "1"])
    assert "translator, caller" in capsys.readouterr().err


def test_bench_compares_the_executors_on_the_planner_only():
    from reference.react.agent import ReactEnv
    assert bench.executor_cost(None, ["x"], 4, lambda t: ReactEnv("What is 1 plus 1?", 2, 40)) \
        is None


def test_the_reference_caller_is_the_one_rules_yaml_fixes(monkeypatch):
    from reference import hashing
    from reference.checkpoint import CheckpointError
    from reference.rules import load_rules
    fixed = load_rules().benchmark("nano-planner").executors["caller"]
    assert hashing.file_sha256(fixed.checkpoint) == fixed.checkpoint_sha256
    assert (fixed.checkpoint.parent / "model.sha256").read_text().split()[0] == \
        fixed.checkpoint_sha256
    monkeypatch.setattr(hashing, "file_sha256", lambda path: "0" * 64)  # another file
    with pytest.raises(CheckpointError, match="not the function caller"):
        fc.load_caller()
