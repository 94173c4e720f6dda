"""Scoring and re-execution shared by make submission and the checker (reference/grading.py)."""
import pytest

from reference.codegen.tasks import CodeTask
from reference.grading import BudgetExceeded, Grader, load_tasks, same_feedback
from reference.react.tasks import Task

SUM = CodeTask("c", "sum_list", "Return the sum of [1, 2, 3, 4, 5]", "15",
               "result = sum([1, 2, 3, 4, 5])")


@pytest.fixture(scope="module")
def grader():
    with Grader() as g:
        yield g


def test_codegen_answers_are_programs_run_in_the_sandbox(grader):
    assert grader.correct("nano-codegen", SUM, "result = sum([1, 2, 3, 4, 5])")
    assert grader.correct("nano-codegen", SUM, "result = 15")  # any program with that output
    assert not grader.correct("nano-codegen", SUM, "15")        # a bare answer is no program
    assert not grader.correct("nano-codegen", SUM, "result = sum([1, 2, 3, 4])")
    assert not grader.correct("nano-codegen", SUM, "import os\nresult = 15")
    assert not grader.correct("nano-codegen", SUM, None)


def test_react_answers_are_compared_exactly(grader):
    t = Task("r", "const_op_number", "What is pi times 2?", "6.28318", 2)
    assert grader.correct("nano-react", t, "6.28318")
    assert (not grader.correct("nano-react", t, "6.283180")
            and not grader.correct("nano-react", t, None))


def test_reexecution_gives_the_logged_feedback(grader):
    ok, fresh = grader.observation_matches("nano-codegen", SUM, "python",
                                           "result = sum([1, 2, 3, 4])", "Wrong output: 10")
    assert ok and fresh == "Wrong output: 10"
    ok, fresh = grader.observation_matches("nano-codegen", SUM, "python",
                                           "result = sum([1, 2, 3, 4])", "Output: 15 (correct)")
    assert not ok
    ok, _ = grader.observation_matches("nano-codegen", SUM, "calculator", "1 + 1", "2")
    assert not ok  # codegen attempts are python programs only
    t = Task("r", "const_op_number", "What is pi times 2?", "6.28318", 2)
    assert grader.observation_matches("nano-react", t, "lookup", "pi", "3.14159")[0]
    assert not grader.observation_matches("nano-react", t, "lookup", "pi", "3")[0]


def test_limit_verdicts_match_on_their_kind_only():
    assert same_feedback("Timeout: CPU-time limit exceeded", "Timeout: killed after 2.0 s")
    assert not same_feedback("Runtime error: x", "Timeout: killed after 2.0 s")
    assert not same_feedback("Wrong output: 1", "Wrong output: 2")


def test_a_submission_of_slow_programs_hits_the_budget():
    with Grader(budget_s=0.5) as g:
        with pytest.raises(BudgetExceeded):
            for i in range(20):  # each distinct, each killed by the CPU or wall limit
                g.correct("nano-codegen", SUM, f"x = {i}\nwhile True:\n    x += 1")
        assert g.spent_s < 5


def test_tasks_load_per_benchmark():
    from reference.rules import load_rules
    rules = load_rules()
    code = load_tasks("nano-codegen", rules.benchmark("nano-codegen").eval_set)
    react = load_tasks("nano-react", rules.benchmark("nano-react").eval_set)
    assert code[0].question == code[0].prompt == "Return the sum of [1, 2, 3, 4, 5]"
    assert react[0].question.startswith("What is the length of 'hello world'")
