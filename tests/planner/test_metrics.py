"""The three metrics over logged episodes, positive and negative cases."""
from reference.planner.metrics import (INVALID, NO_ADVANCE, TOOL_ERROR, UNTRANSLATABLE,
                                       aggregate, score_episode)
from reference.planner.schema import dump_step
from reference.planner.tasks import OracleCall, Task, generate, load_eval_set


def step(task, tool, thought="ok"):
    return dump_step({"thought": thought, "task": task, "tool": tool})


def final(answer):
    return dump_step({"final_answer": answer})


# "What is the length of 'ab' times pi, plus 1?": 2, 3.14159, 2 * 3.14159 + 1 = 7.28318
TASK = Task("x", "length_const_plus", "What is the length of 'ab' times pi, plus 1?", "7.28318", 3,
            (OracleCall("string_length", "ab", "2"), OracleCall("lookup", "pi", "3.14159"),
             OracleCall("calculator", "2 * 3.14159 + 1", "7.28318")))
ORACLE = [step("Count the characters in 'ab'", "string_length"), step("Look up pi", "lookup"),
          step("Compute 2 * 3.14159 + 1", "calculator"), final("7.28318")]


def test_the_oracle_episode_passes_completes_and_has_no_bad_task():
    s = score_episode(TASK, ORACLE)
    assert (s.passed, s.completed, s.tool_steps, s.bad_steps) == (True, True, 3, 0)
    assert [v.matched for v in s.verdicts[:3]] == [0, 1, 2]


def test_every_frozen_oracle_plan_scores_perfectly():
    tasks = {t.request: t for t in load_eval_set()[:200]}
    scores = []
    for traj in generate(20261214, 200, prefix="planner-"):
        steps = [t for r, t in traj.segments if r == "agent"]
        scores.append(score_episode(tasks[traj.task.request], steps))
    assert aggregate(scores)["pass_rate"] == 1.0
    assert aggregate(scores)["bad_task_rate"] == 0.0


def test_a_wrong_final_answer_completes_but_does_not_pass():
    s = score_episode(TASK, ORACLE[:3] + [final("7.28")])
    assert s.completed and not s.passed and s.bad_steps == 0


def test_no_final_answer_within_ten_steps_is_not_completed():
    steps = (ORACLE[:3] + [step("Look up e", "lookup")] * 6
             + [step("Look up e", "lookup"), final("7.28318")])
    s = score_episode(TASK, steps)
    assert not s.completed and not s.passed and s.answer is None
    assert s.tool_steps == 10  # the eleventh step is never read


def test_a_final_answer_at_step_ten_completes():
    steps = ORACLE[:3] + [step("Look up e", "lookup")] * 6 + [final("7.28318")]
    assert score_episode(TASK, steps).passed


def test_a_task_its_tool_cannot_translate_is_bad():
    s = score_episode(TASK, [step("Count the characters in 'ab'", "lookup")] + ORACLE)
    assert s.verdicts[0].bad == UNTRANSLATABLE and s.bad_steps == 1 and s.passed


def test_a_tool_error_is_bad():
    s = score_episode(TASK, [step("Divide 1 by 0", "calculator")] + ORACLE)
    assert s.verdicts[0].bad == TOOL_ERROR and s.bad_steps == 1


def test_a_valid_call_that_is_not_in_the_oracle_plan_does_not_advance():
    s = score_episode(TASK, [step("Look up e", "lookup")] + ORACLE)
    assert s.verdicts[0].bad == NO_ADVANCE and s.bad_steps == 1


def test_repeating_a_call_does_not_advance_even_if_another_oracle_call_has_its_result():
    twin = Task("y", "t", "r", "4", 3, (OracleCall("string_length", "ab", "2"),
                                       OracleCall("string_length", "cd", "2"),
                                       OracleCall("calculator", "2 + 2", "4")))
    ab = step("Count the characters in 'ab'", "string_length")
    s = score_episode(twin, [ab, ab, step("Count the characters in 'cd'", "string_length"),
                             step("Add 2 and 2", "calculator"), final("4")])
    assert [v.bad for v in s.verdicts] == ["", NO_ADVANCE, "", "", ""]


def test_an_equivalent_call_advances():
    s = score_episode(TASK, [ORACLE[0], ORACLE[1], step("Compute 3.14159 * 2 + 1", "calculator"),
                             final("7.28318")])
    assert s.bad_steps == 0 and s.passed


def test_an_invalid_step_is_bad_and_steps_after_the_final_answer_are_ignored():
    s = score_episode(TASK, ['{"thought": "x"}', "not json"] + ORACLE
                      + [step("Look up e", "lookup")])
    assert [v.bad for v in s.verdicts[:2]] == [INVALID, INVALID]
    assert s.tool_steps == 5 and s.bad_steps == 2 and s.passed


def test_aggregate_rates_are_summed_over_episodes():
    good = score_episode(TASK, ORACLE)
    bad = score_episode(TASK, [step("Look up e", "lookup")])  # one bad step, no answer
    agg = aggregate([good, bad])
    assert agg["pass_rate"] == 0.5 and agg["completion_rate"] == 0.5
    assert agg["bad_task_rate"] == 1 / 4
    assert aggregate([])["pass_rate"] == 0.0


def test_a_word_the_request_names_twice_may_be_measured_twice():
    twice = Task("z", "t", "r", "4", 3, (OracleCall("string_length", "ab", "2"),
                                        OracleCall("string_length", "ab", "2"),
                                        OracleCall("calculator", "2 + 2", "4")))
    ab = step("Count the characters in 'ab'", "string_length")
    s = score_episode(twice, [ab, ab, ab, step("Add 2 and 2", "calculator"), final("4")])
    assert [v.bad for v in s.verdicts] == ["", "", NO_ADVANCE, "", ""]


def test_another_word_of_the_same_length_does_not_advance():
    s = score_episode(TASK, [step("Count the characters in 'zz'", "string_length")] + ORACLE)
    assert s.verdicts[0].bad == NO_ADVANCE and s.verdicts[1].bad == ""


def test_a_comparison_of_other_numbers_with_the_same_verdict_does_not_advance():
    task = Task("c", "t", "r", "greater", 1, (OracleCall("compare", "8, 7", "greater"),))
    s = score_episode(task, [step("Compare 9 with 1", "compare"),
                             step("Compare 8 with 7", "compare"), final("greater")])
    assert [v.bad for v in s.verdicts] == [NO_ADVANCE, "", ""]
