import random

import pytest

from reference.codegen.agent import CodegenEnv, trajectory
from reference.codegen.format import parse_program, step_complete
from reference.codegen.sandbox import Verifier
from reference.codegen.tasks import (EVAL_PATH, SEED_TASKS, CodeTask, generate, load_eval_set,
                                     miscopied_program, wrong_program)
from reference.hashing import file_sha256
from reference.sft import IGNORE_INDEX, build_sft_labels


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2) as v:
        yield v


def test_frozen_set_has_500_tasks_with_the_seed_tasks_first():
    tasks = load_eval_set()
    assert len(tasks) >= 500 and len({t.prompt for t in tasks}) == len(tasks)
    assert [(t.prompt, t.answer) for t in tasks[:8]] == [(p, a) for p, a, _, _ in SEED_TASKS]
    assert (EVAL_PATH.parent / "eval.sha256").read_text().split()[0] == file_sha256(EVAL_PATH)


def test_ground_truth_comes_from_running_the_oracle(verifier):
    for t in load_eval_set()[:40]:
        assert verifier.verify(t.oracle, t.answer).ok, t


def test_training_prompts_are_disjoint_from_the_frozen_set(verifier):
    frozen = {t.prompt for t in load_eval_set()}
    train = generate(1, 300, verifier, exclude=frozen)
    assert not frozen & {t.prompt for t in train}


def test_retry_loop_appends_feedback_and_stops_when_solved(verifier):
    task = CodeTask("t", "sum_list", "Return the sum of [1, 2, 3, 4, 5]", "15",
                    "result = sum([1, 2, 3, 4, 5])")
    env = CodegenEnv(task, verifier)
    rec = env.step("Program:\nresult = sum([1, 2, 3, 4])\nEnd\n")
    assert env.result.attempts[-1].result.kind == "wrong_output" and not env.done
    assert rec.tool == "python" and rec.observation == "Wrong output: 10"
    assert env.prompt().endswith("End\nFeedback: Wrong output: 10\n")
    env.step("Program:\nresult = sum([1, 2, 3, 4, 5])\nEnd\n")
    assert env.result.attempts[-1].result.ok and env.done and env.result.stop_reason == "solved"
    assert env.result.output == "15" and not env.result.passed_first
    assert env.result.answer == "result = sum([1, 2, 3, 4, 5])"


def test_attempt_bound_ends_the_episode(verifier):
    task = CodeTask("t", "power", "Return 2 to the power of 10", "1024", "result = 2 ** 10")
    env = CodegenEnv(task, verifier, max_attempts=3)
    for program in ("import os", "result = (", "while True: pass"):
        env.step(f"Program:\n{program}\nEnd\n")
    assert env.done and env.result.stop_reason == "max_attempts"
    kinds = [a.result.kind for a in env.result.attempts]
    assert kinds == ["unsafe", "syntax", "timeout"] and env.result.output is None
    assert [s.tool_input for s in env.result.steps] == ["import os", "result = (",
                                                       "while True: pass"]


def test_program_parsing_and_step_end():
    assert parse_program("Program:\nx = 1\nresult = x\nEnd\n") == "x = 1\nresult = x"
    assert parse_program("result = 1\nEnd\ntrailing") == "result = 1"
    assert step_complete("Program:\nresult = 1\nEnd\n") and not step_complete("Program:\nEnd")


def test_repair_trajectories_mask_the_failed_attempt_and_feedback(verifier):
    rng = random.Random(0)
    task = load_eval_set()[0]
    segs = trajectory(task, verifier, rng, p_repair=1.0)
    assert [r for r, _ in segs] == ["prompt", "agent_masked", "observation", "agent"]
    assert segs[2][1].startswith("Feedback: ")
    ids, labels = build_sft_labels(segs)
    learned = bytes(l for l in labels if l != IGNORE_INDEX).decode()
    assert learned == f"Program:\n{task.oracle}\nEnd\n"


def test_wrong_programs_really_fail(verifier):
    rng = random.Random(1)
    for t in load_eval_set()[:60]:
        assert not verifier.verify(wrong_program(rng, t.oracle), t.answer).ok, t.oracle


def test_miscopied_programs_change_one_copied_argument_and_mostly_fail(verifier):
    rng = random.Random(2)
    tasks = generate(9, 80, verifier, variety="wide")
    changed = failed = 0
    for t in tasks:
        bad = miscopied_program(rng, t.oracle, t.prompt)
        if bad is None:  # no integer of the program is copied from the task
            continue
        changed += 1
        assert bad != t.oracle and bad.replace("result = ", "") != t.oracle
        failed += not verifier.verify(bad, t.answer).ok
    # a miscopy that leaves the output alone (a skipped element that is not the maximum) is
    # no failure; trajectory() then leaves the detour out
    assert changed >= 40 and failed >= 0.6 * changed
    assert miscopied_program(rng, "result = 'abc'.upper()", "Uppercase 'abc'") is None
    # the slice of reverse_list is no copied number; a list element is
    for _ in range(20):
        bad = miscopied_program(rng, "result = [3, 45][::-1]", "Reverse the list [3, 45]")
        assert bad.endswith("[::-1]") and bad != "result = [3, 45][::-1]"


def test_miscopy_detours_are_masked_and_repaired_by_the_oracle(verifier):
    task = generate(9, 1, verifier, variety="wide", exclude=set())[0]
    rng = random.Random(0)
    segs = trajectory(task, verifier, rng, p_repair=1.0, p_miscopy=1.0)
    assert [r for r, _ in segs][-1] == "agent" and segs[-1][1] == f"Program:\n{task.oracle}\nEnd\n"
    # p_miscopy=0 draws nothing extra: the committed recipe's data stream is unchanged
    a = trajectory(task, verifier, random.Random(5), p_repair=0.5)
    b = trajectory(task, verifier, random.Random(5), p_repair=0.5, p_miscopy=0.0)
    assert a == b
