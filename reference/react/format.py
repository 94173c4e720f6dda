"""The ReAct trajectory text format and its parser.

One item per line:

    Question: What is pi times 2?
    Thought: I need the value of pi.
    Action: lookup
    Action Input: pi
    Observation: 3.14159
    ...
    Final Answer: 6.28318

The agent writes Thought / Action / Action Input / Final Answer lines; the environment writes
the Question line and every `Observation: <text>` line. `parse_step` reads what the agent wrote
since the last observation. Semantics (from the ReAct drill):
- `Final Answer:` wins over any `Action:` in the same step and takes the rest of its line;
- a step with an `Action:` and an `Action Input:` line is a tool call;
- anything else is unparsable and becomes an `Error: ...` observation, not a crash.
"""
from __future__ import annotations

from functools import lru_cache

from dataclasses import dataclass

QUESTION = "Question: "
THOUGHT = "Thought: "
ACTION = "Action: "
ACTION_INPUT = "Action Input: "
OBSERVATION = "Observation: "
FINAL_ANSWER = "Final Answer: "


@dataclass(frozen=True)
class Step:
    """What one agent step asked for."""
    kind: str               # "final" | "action" | "error"
    answer: str = ""        # kind == "final"
    tool: str = ""          # kind == "action"
    tool_input: str = ""    # kind == "action"
    error: str = ""         # kind == "error": the text of the Error observation


def _field(line: str, prefix: str) -> str | None:
    # Prefixes are matched without their trailing space so `Final Answer:42` still counts.
    head = prefix.rstrip()
    if line.startswith(head):
        return line[len(head):].strip()
    return None


def parse_step(text: str) -> Step:
    """Parse the text the agent generated since the last observation."""
    tool = tool_input = None
    for line in text.split("\n"):
        line = line.strip()
        answer = _field(line, FINAL_ANSWER)
        if answer is not None:
            return Step("final", answer=answer)
        if line.startswith("Observation:"):
            break  # the agent started writing the environment's line: stop reading there
        value = _field(line, ACTION_INPUT)
        if value is not None:
            if tool_input is None:
                tool_input = value
            continue
        value = _field(line, ACTION)
        if value is not None and tool is None:
            tool = value
    if tool is not None and tool_input is not None:
        return Step("action", tool=tool, tool_input=tool_input)
    if tool is not None:
        return Step("error", error="Error: missing Action Input")
    return Step("error", error="Error: no Action or Final Answer in this step")


def question_line(question: str) -> str:
    return f"{QUESTION}{question}\n"


def observation_line(observation: str) -> str:
    # An observation is one line: newlines inside a tool result would forge agent lines.
    return f"{OBSERVATION}{' '.join(observation.splitlines())}\n"


def step_complete(text: str) -> bool:
    """True once the agent's step text holds enough to act on (checked at each newline)."""
    last = text.rstrip("\n").rsplit("\n", 1)[-1].strip()
    return (last.startswith(FINAL_ANSWER.rstrip()) or last.startswith(ACTION_INPUT.rstrip())
            or last.startswith("Observation:"))


# the checker parses every logged step; agent steps repeat across episodes
parse_step_cached = lru_cache(maxsize=65536)(parse_step)
