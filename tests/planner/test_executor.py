"""The deterministic executor: each tool's phrasings, and typed bad tasks."""
import pytest

from reference.planner.executor import (BAD_OPERAND, NO_FORM, UNKNOWN_TOOL, BadTask, Call,
                                        execute, translate)


@pytest.mark.parametrize("tool,task,call_input", [
    ("calculator", "Add 3 and 4", "3 + 4"),
    ("calculator", "add 1.5, 2, 3 and 4.", "1.5 + 2 + 3 + 4"),
    ("calculator", "Subtract 5 from 20", "20 - 5"),
    ("calculator", "Subtract -5 from 3", "3 - (-5)"),
    ("calculator", "Multiply 6.022e+23 by 5", "6.022e+23 * 5"),
    ("calculator", "Divide 10 by 4", "10 / 4"),
    ("calculator", "Compute 6 * 1.381e-23 + (-12)", "6 * 1.381e-23 + (-12)"),
    ("calculator", "Calculate (2 + 3) * 4.", "(2 + 3) * 4"),
    ("string_length", "Count the characters in 'hello world'", "hello world"),
    ("string_length", "Find the length of 'x'", "x"),
    ("lookup", "Look up the value of golden_ratio", "golden_ratio"),
    ("lookup", "Look up PI", "pi"),
    ("compare", "Compare 28.2743 with 1.3252e-33", "28.2743, 1.3252e-33"),
    ("compare", "compare -3 to -3.", "-3, -3"),
])
def test_each_form_translates_to_the_exact_call(tool, task, call_input):
    assert translate(tool, task) == Call(tool, call_input)


@pytest.mark.parametrize("tool,task,kind", [
    ("calculator", "Use the previous result", NO_FORM),
    ("calculator", "Add 3", NO_FORM),
    ("calculator", "Compute pi * 2", NO_FORM),
    ("calculator", "Count the characters in 'abc'", NO_FORM),
    ("string_length", "Look up the value of pi", NO_FORM),
    ("string_length", "Count the characters in 'a' and 'b'", BAD_OPERAND),
    ("lookup", "Look up the value of tau", BAD_OPERAND),
    ("lookup", "Find pi", NO_FORM),
    ("compare", "Compare pi with e", NO_FORM),
    ("compare", "Compare 1, 2 and 3", NO_FORM),
    ("search", "Look up pi", UNKNOWN_TOOL),
])
def test_a_task_the_tool_cannot_execute_is_a_typed_bad_task(tool, task, kind):
    with pytest.raises(BadTask) as err:
        translate(tool, task)
    assert err.value.kind == kind
    out = execute(tool, task)
    assert out.status == "bad_task" and out.call is None and out.bad_kind == kind
    assert out.observation.startswith("Error: bad task: ")


def test_a_translated_call_the_tool_refuses_is_a_tool_error_not_a_bad_task():
    out = execute("calculator", "Divide 1 by 0")
    assert out.status == "tool_error" and out.call == Call("calculator", "1 / 0")
    assert out.observation == "Error: division by zero"


def test_execute_runs_the_real_tool():
    assert execute("lookup", "Look up pi").observation == "3.14159"
    assert execute("calculator", "Multiply 11 by 10").observation == "110"
