"""The nano-planner's step format: one compact JSON object per planner step, and its JSON Schema.

    from reference.planner.schema import STEP_SCHEMA, dump_step, parse_step
    dump_step({"thought": "I need pi.", "task": "Look up pi", "tool": "lookup"})
    # -> '{"thought":"I need pi.","task":"Look up pi","tool":"lookup"}'

A step is either a tool step `{"thought": str, "task": str, "tool": <tool name>}` (the
planner's reasoning, an informal task for the executor, and the tool that should do it) or
the end `{"final_answer": str}`. The serialisation is fixed, so the schema is a finite byte
language a 256-byte-vocabulary model can be constrained to (reference/planner/constraint.py):
- keys in exactly this order, no whitespace outside strings (`separators=(",", ":")`);
- string values are 1 to MAX_* characters of printable ASCII other than `"` and `\\`
  (`STRING_CHARS`), so a value never needs an escape and every byte of a step is ASCII;
- `tool` is one of the four tools of reference/tools.py.

The bounds make the longest step 263 bytes (MAX_STEP_BYTES); the oracle's steps are far
shorter (see the test).

Limits: no nesting, no numbers or booleans, no non-ASCII text (the tasks never need any).
"""
from __future__ import annotations

import json
import re

from reference.tools import TOOLS

TOOL_NAMES = tuple(TOOLS)   # calculator, string_length, lookup, compare (the schema's enum order)
MAX_THOUGHT = 96            # characters of a thought
MAX_TASK = 120              # characters of a task (a quoted phrase and its verb fit easily)
MAX_ANSWER = 40             # characters of a final answer (a %.6g number or a comparison word)
# Printable ASCII except the quote and the backslash: 0x20-0x21, 0x23-0x5B, 0x5D-0x7E.
STRING_CHARS = r"[ !#-\[\]-~]"


def _string(max_len: int) -> dict:
    # The length bound lives in the pattern alone: given minLength/maxLength as well,
    # outlines-core 0.2.14 builds its regex from the lengths and drops the pattern (measured:
    # any non-control Unicode and escapes were then allowed). jsonschema enforces the same.
    return {"type": "string", "pattern": f"^{STRING_CHARS}{{1,{max_len}}}$"}


TOOL_STEP = {
    "type": "object",
    "properties": {"thought": _string(MAX_THOUGHT), "task": _string(MAX_TASK),
                   "tool": {"enum": list(TOOL_NAMES)}},
    "required": ["thought", "task", "tool"],
    "additionalProperties": False,
}
FINAL_STEP = {
    "type": "object",
    "properties": {"final_answer": _string(MAX_ANSWER)},
    "required": ["final_answer"],
    "additionalProperties": False,
}
STEP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "nano-planner step",
    "anyOf": [TOOL_STEP, FINAL_STEP],
}
KEY_ORDER = (("thought", "task", "tool"), ("final_answer",))
# The longest step the schema allows, in bytes: the tool step with every string at its bound.
MAX_STEP_BYTES = len('{"thought":"","task":"","tool":""}') + MAX_THOUGHT + MAX_TASK + \
    max(len(t) for t in TOOL_NAMES)

_VALUE_RE = re.compile(f"{STRING_CHARS}+")


def dump_step(step: dict) -> str:
    """The one serialisation of a step (raises ValueError for anything the schema refuses)."""
    problem = step_problem(step)
    if problem:
        raise ValueError(f"not a planner step: {problem}")
    return json.dumps(step, separators=(",", ":"))


def step_problem(step) -> str:
    """Why `step` (a parsed object) is not a valid step in canonical key order; '' if it is."""
    if not isinstance(step, dict):
        return "not an object"
    if tuple(step) not in KEY_ORDER:
        return f"keys {list(step)} are not {' or '.join(str(list(k)) for k in KEY_ORDER)}"
    bounds = {"thought": MAX_THOUGHT, "task": MAX_TASK, "final_answer": MAX_ANSWER}
    for key, value in step.items():
        if not isinstance(value, str):
            return f"{key} is not a string"
        if key == "tool":
            if value not in TOOL_NAMES:
                return f"tool {value[:40]!r} is not one of {', '.join(TOOL_NAMES)}"
        elif not (1 <= len(value) <= bounds[key] and _VALUE_RE.fullmatch(value)):
            return (f"{key} is not 1-{bounds[key]} printable ASCII characters "
                    "without quote or backslash")
    return ""


def parse_step(text: str) -> tuple[dict | None, str]:
    """(step, '') for a canonical step text, else (None, why). Never raises."""
    try:
        step = json.loads(text)
    except (ValueError, RecursionError) as err:
        return None, f"not JSON: {err}"
    problem = step_problem(step)
    if problem:
        return None, problem
    if json.dumps(step, separators=(",", ":")) != text:
        return None, "not in the canonical serialisation (whitespace or escapes)"
    return step, ""
