"""The step schema: canonical serialisation, and agreement with jsonschema."""
import json

import jsonschema
import pytest

from reference.planner.schema import (MAX_ANSWER, MAX_STEP_BYTES, MAX_TASK, MAX_THOUGHT,
                                      STEP_SCHEMA, dump_step, parse_step, step_problem)

GOOD = [
    {"thought": "I need pi.", "task": "Look up pi", "tool": "lookup"},
    {"final_answer": "6.28318"},
    {"thought": "t" * MAX_THOUGHT, "task": "k" * MAX_TASK, "tool": "string_length"},
]
BAD = [
    {"tool": "lookup", "thought": "x", "task": "y"},          # key order
    {"thought": "x", "task": "y", "tool": "search"},          # unknown tool
    {"thought": "", "task": "y", "tool": "lookup"},           # empty
    {"thought": "x" * (MAX_THOUGHT + 1), "task": "y", "tool": "lookup"},
    {"final_answer": "a\"b"},                                  # needs an escape
    {"final_answer": "caf\u00e9"},                             # non-ASCII
    {"final_answer": "1\n2"},                                  # control character
    {"final_answer": "7", "thought": "x"},                     # extra key
    {"final_answer": 7},                                       # not a string
    ["final_answer", "7"],
]


def test_canonical_steps_round_trip_and_validate():
    for step in GOOD:
        text = dump_step(step)
        assert parse_step(text) == (step, "")
        jsonschema.validate(json.loads(text), STEP_SCHEMA)
    assert len(dump_step(GOOD[2])) == MAX_STEP_BYTES


@pytest.mark.parametrize("step", BAD)
def test_non_steps_are_refused_by_both_the_schema_and_the_checker(step):
    assert step_problem(step)
    with pytest.raises(ValueError):
        dump_step(step)
    # jsonschema accepts a key order we do not; everything else it refuses as well
    if not (isinstance(step, dict) and set(step) == {"thought", "task", "tool"} and
            step.get("tool") == "lookup" and step.get("thought") == "x"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(step, STEP_SCHEMA)


def test_parse_step_refuses_whitespace_and_escapes_without_raising():
    assert parse_step('{"final_answer": "7"}')[0] is None
    assert parse_step('{"final_answer":"\\u0037"}')[0] is None
    assert parse_step('{"final_answer":"7"')[0] is None
    assert parse_step("[" * 100000)[0] is None
    assert MAX_ANSWER < MAX_THOUGHT < MAX_TASK
