"""The nano-planner executor: a deterministic per-tool translator from an informal task to an
exact tool call, and the call's execution through the real tools.

    from reference.planner.executor import execute, translate
    translate("calculator", "Multiply 11 by 10")   # -> Call("calculator", "11 * 10")
    execute("lookup", "Look up the value of pi").observation   # -> "3.14159"

The planner only decides *what* the next step is and *which* tool does it (bot-with-plan);
this module turns its `task` text into the tool's exact input. Each tool accepts a small,
documented set of phrasings (`FORMS`), the ones the oracle plans write (reference/planner/
tasks.py draws from all of them). A task that matches no form of its selected tool, or matches
ambiguously, is a *bad task*: `translate` raises `BadTask` with a typed `kind`, and `execute`
turns it into an `Error: bad task: ...` observation the planner sees (never an exception).

Forms (case-insensitive verbs; a trailing period is allowed; NUM is a number as the tools
print them, `reference.tools.NUMBER_RE`; one trailing period is dropped first; negative
operands are parenthesised in the call):
- calculator: `Add NUM and NUM`, `Add NUM, NUM[, ...] and NUM` (sum), `Subtract NUM from NUM`,
  `Multiply NUM by NUM`, `Divide NUM by NUM`, `Compute EXPR` / `Calculate EXPR` (EXPR: the
  calculator's own characters, at least one digit).
- string_length: `Count the characters in 'TEXT'` / `Find the length of 'TEXT'` (exactly one
  single-quoted text; TEXT may not contain a quote).
- lookup: `Look up the value of KEY` / `Look up KEY` (KEY one of the table's keys).
- compare: `Compare NUM with NUM` (also `and`, `to`).

Limits: English phrasings only, no references to earlier results ("the previous result"): a
task carries its operands as text, so a step is checkable on its own. The second executor
variant of issue 14 (a small "function caller" model) is not built yet.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from reference.tools import LOOKUP_TABLE, TOOLS, run_tool

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_END = r"\s*$"  # one trailing period is removed before matching (see translate)
_CALC_EXPR = re.compile(r"[0-9.eE+\-*/%() ]*\d[0-9.eE+\-*/%() ]*", re.ASCII)

# Kinds of bad task (the typed failure modes of translation).
NO_FORM = "no_form"          # the task matches no phrasing of the selected tool
UNKNOWN_TOOL = "unknown_tool"  # the selected tool does not exist (the schema forbids it)
BAD_OPERAND = "bad_operand"  # a form matched but an operand is unusable (unknown key, quote)


class BadTask(Exception):
    """A task the selected tool cannot execute; `kind` is one of the constants above."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Call:
    tool: str
    input: str


@dataclass(frozen=True)
class Outcome:
    """What executing one planner step produced.

    `status`: `ok` (the tool ran and returned a value), `tool_error` (the call was translated
    but the tool refused it: its `Error: ...` text is the observation), `bad_task` (no call)."""
    status: str
    call: Call | None
    observation: str
    bad_kind: str = ""
    translate_s: float = 0.0   # wall time of the translation alone (the rest ran the tool)


def _operand(num: str) -> str:
    return f"({num})" if num.startswith("-") else num


def _calculator(task: str) -> str:
    t = task.strip()
    m = re.fullmatch(rf"(?i:add|sum)\s+((?:{_NUM}\s*,\s*)*{_NUM})\s+and\s+({_NUM}){_END}", t)
    if m:
        nums = [n.strip() for n in m.group(1).split(",")] + [m.group(2)]
        return " + ".join(_operand(n) for n in nums)
    m = re.fullmatch(rf"(?i:subtract)\s+({_NUM})\s+from\s+({_NUM}){_END}", t)
    if m:
        return f"{_operand(m.group(2))} - {_operand(m.group(1))}"
    m = re.fullmatch(rf"(?i:multiply)\s+({_NUM})\s+by\s+({_NUM}){_END}", t)
    if m:
        return f"{_operand(m.group(1))} * {_operand(m.group(2))}"
    m = re.fullmatch(rf"(?i:divide)\s+({_NUM})\s+by\s+({_NUM}){_END}", t)
    if m:
        return f"{_operand(m.group(1))} / {_operand(m.group(2))}"
    m = re.fullmatch(rf"(?i:compute|calculate)\s+(.+?){_END}", t)
    if m and _CALC_EXPR.fullmatch(m.group(1)):
        return m.group(1).strip()
    raise BadTask(NO_FORM, f"no calculator form matches {t[:60]!r}")


def _string_length(task: str) -> str:
    t = task.strip()
    m = re.fullmatch(rf"(?i:count the characters in|find the length of)\s+'([^']*)'{_END}", t)
    if m:
        return m.group(1)
    if t.count("'") > 2:
        raise BadTask(BAD_OPERAND, "the text to measure may not contain a quote")
    raise BadTask(NO_FORM, f"no string_length form matches {t[:60]!r}")


def _lookup(task: str) -> str:
    t = task.strip()
    m = re.fullmatch(rf"(?i:look up)(?:\s+the value of)?\s+([A-Za-z0-9_]+){_END}", t)
    if not m:
        raise BadTask(NO_FORM, f"no lookup form matches {t[:60]!r}")
    key = m.group(1).lower()
    if key not in LOOKUP_TABLE:
        raise BadTask(BAD_OPERAND, f"unknown key {key[:40]!r}")
    return key


def _compare(task: str) -> str:
    t = task.strip()
    m = re.fullmatch(rf"(?i:compare)\s+({_NUM})\s+(?:with|and|to)\s+({_NUM}){_END}", t)
    if not m:
        raise BadTask(NO_FORM, f"no compare form matches {t[:60]!r}")
    return f"{m.group(1)}, {m.group(2)}"


TRANSLATORS = {
    "calculator": _calculator,
    "string_length": _string_length,
    "lookup": _lookup,
    "compare": _compare,
}
assert set(TRANSLATORS) == set(TOOLS), "every tool needs a translator"


def translate(tool: str, task: str) -> Call:
    """The exact call for an informal task; raises BadTask when the tool cannot execute it."""
    fn = TRANSLATORS.get(tool)
    if fn is None:
        raise BadTask(UNKNOWN_TOOL, f"unknown tool {tool[:40]!r}")
    # A sentence's period is not part of the last operand: `Add 3 and 4.` adds 4, not `4.`.
    task = task.strip()
    return Call(tool, fn(task[:-1] if task.endswith(".") else task))


def execute(tool: str, task: str, translator=None) -> Outcome:
    """Translate and run one planner step; never raises for anything the planner wrote.
    `translator(tool, task) -> Call` (raising BadTask) writes the call: this module's
    `translate` by default, or the function-caller model's (reference/planner/caller.py)."""
    t0 = time.perf_counter()
    try:
        call = (translator or translate)(tool, task)
    except BadTask as err:
        return Outcome("bad_task", None, f"Error: bad task: {err}", err.kind,
                       time.perf_counter() - t0)
    t1 = time.perf_counter()
    obs = run_tool(call.tool, call.input)
    return Outcome("tool_error" if obs.startswith("Error:") else "ok", call, obs,
                   translate_s=t1 - t0)
