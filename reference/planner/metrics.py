"""nano-planner's three quality metrics, as pure functions over logged episodes.

    from reference.planner.metrics import score_episode, aggregate
    s = score_episode(task, ['{"thought":...,"task":...,"tool":"lookup"}', '{"final_answer":"3"}'])
    aggregate([s, ...])   # -> {"pass_rate": ..., "bad_task_rate": ..., "completion_rate": ...}

An episode log is the list of planner step texts, in order, exactly as decoded (each one JSON
object). Nothing else in the log is trusted: every step is parsed against the schema and
re-executed through the deterministic executor and the real tools (all pure), so a checker
recomputes the metrics from the steps and the frozen task alone. Definitions (rules.md text
in reference/planner/README.md):

- A **step** is one planner step text. A **tool step** is any step that is not a valid final
  answer (an invalid step counts as a tool step, so it can be bad). Steps after the first
  final answer, and steps beyond MAX_STEPS, are not read.
- A tool step is **bad** when any of:
  `invalid`: it is not a schema-valid step (impossible under constrained decoding);
  `untranslatable`: the executor cannot turn its task into a call of its tool (BadTask);
  `tool_error`: the call is made and the tool answers `Error: ...`;
  `no_advance`: the call does not advance the oracle plan.
- A call **advances** the oracle plan when (1) it *matches* an oracle call of the task not yet
  matched by an earlier step of this episode, and (2) earlier steps of this episode made the
  same exact call (tool and input) fewer times than max(1, the number of times the oracle plan
  makes it). It then matches the first such oracle call. *Matches*: for `calculator`, the same
  observation (any expression that computes the oracle's value: `Multiply 10 by 11` for the
  oracle's `11 * 10`, or one expression doing two oracle steps at once); for `string_length`,
  `lookup` and `compare`, the same input as the oracle's call (the same text measured, the same
  key, the same two numbers as written), since there a different input with an equal result
  (another word of the same length) is not progress. (2) keeps a repeated call from matching a
  second oracle call with the same result, while a request that names the same word twice
  still lets it be measured twice.
- An episode is **completed** when a valid final-answer step occurs within its first
  MAX_STEPS steps; it **passes** when it is completed and the answer equals the task's answer
  exactly (string equality, no normalisation).
- Over a set of episodes: pass rate = passed / episodes; completion rate = completed /
  episodes; bad-task rate = bad tool steps / tool steps, both summed over all episodes
  (0 when there is no tool step).

Limits: "advance" is judged against the one oracle plan; a correct plan that computes a value
the oracle never does (another route to the same answer) has bad steps and may still pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reference.planner.executor import execute
from reference.planner.schema import parse_step
from reference.planner.tasks import OracleCall, Task

MAX_STEPS = 10  # the completion bound: a final answer within this many planner steps

INVALID, UNTRANSLATABLE, TOOL_ERROR, NO_ADVANCE = (
    "invalid", "untranslatable", "tool_error", "no_advance")


@dataclass(frozen=True)
class StepVerdict:
    index: int
    kind: str             # "final" | "tool"
    bad: str = ""         # "" for a good tool step or a final answer, else one of the four kinds
    matched: int = -1     # index of the oracle call it advanced, or -1
    observation: str = ""  # what the executor returned (the planner saw this)


@dataclass(frozen=True)
class EpisodeScore:
    task_id: str
    completed: bool
    passed: bool
    answer: str | None
    tool_steps: int
    bad_steps: int
    verdicts: tuple[StepVerdict, ...] = field(default_factory=tuple)


def _matches(oracle: OracleCall, call, observation: str) -> bool:
    if oracle.tool != call.tool:
        return False
    if call.tool == "calculator":
        return oracle.observation == observation
    return oracle.input == call.input


def score_episode(task: Task, steps: list[str], max_steps: int = MAX_STEPS) -> EpisodeScore:
    """Score one logged episode against its frozen task (see the module docstring)."""
    matched = [False] * len(task.oracle)
    calls_made: dict[tuple[str, str], int] = {}  # exact calls made so far, with their counts
    oracle_calls: dict[tuple[str, str], int] = {}
    for c in task.oracle:
        oracle_calls[(c.tool, c.input)] = oracle_calls.get((c.tool, c.input), 0) + 1
    verdicts: list[StepVerdict] = []
    answer = None
    for i, text in enumerate(steps[:max_steps]):
        step, _why = parse_step(text)
        if step is not None and "final_answer" in step:
            answer = step["final_answer"]
            verdicts.append(StepVerdict(i, "final"))
            break
        if step is None:
            verdicts.append(StepVerdict(i, "tool", INVALID))
            continue
        out = execute(step["tool"], step["task"])
        if out.status == "bad_task":
            verdicts.append(StepVerdict(i, "tool", UNTRANSLATABLE, observation=out.observation))
            continue
        if out.status == "tool_error":
            verdicts.append(StepVerdict(i, "tool", TOOL_ERROR, observation=out.observation))
            continue
        key = (out.call.tool, out.call.input)
        hit = -1
        if calls_made.get(key, 0) < max(1, oracle_calls.get(key, 0)):
            hit = next((j for j, c in enumerate(task.oracle)
                        if not matched[j] and _matches(c, out.call, out.observation)), -1)
        calls_made[key] = calls_made.get(key, 0) + 1
        if hit >= 0:
            matched[hit] = True
            verdicts.append(StepVerdict(i, "tool", matched=hit, observation=out.observation))
        else:
            verdicts.append(StepVerdict(i, "tool", NO_ADVANCE, observation=out.observation))
    tool = [v for v in verdicts if v.kind == "tool"]
    completed = answer is not None
    return EpisodeScore(task.id, completed, completed and answer == task.answer, answer,
                        len(tool), sum(1 for v in tool if v.bad), tuple(verdicts))


def aggregate(scores: list[EpisodeScore]) -> dict:
    """The three rates over a set of scored episodes (and the counts behind them)."""
    n = len(scores)
    tool = sum(s.tool_steps for s in scores)
    bad = sum(s.bad_steps for s in scores)
    return {"episodes": n,
            "pass_rate": sum(s.passed for s in scores) / n if n else 0.0,
            "completion_rate": sum(s.completed for s in scores) / n if n else 0.0,
            "bad_task_rate": bad / tool if tool else 0.0,
            "tool_steps": tool, "bad_steps": bad}
