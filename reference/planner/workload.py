"""nano-planner as a Workload: the planner environment the shared drivers run, and its scoring.

    from reference.workloads import get_workload
    w = get_workload("nano-planner", "reference.planner.workload")
    with w.episodes(max_steps=10) as make_env:
        result = run_env(model, make_env(task))       # or the batched engine: same answers

`PlannerEnv` (reference/planner/env.py) has the driver interface of ReactEnv plus a `constraint`
(the step schema's byte automaton, compiled once per process): a driver decodes each planner
step under it, so every step is a schema-valid JSON object and ends exactly when the object
does. The environment parses the step, hands its informal `task` to the deterministic executor
(reference/planner/executor.py) and answers with a `Result: ...` line; a final-answer step ends
the episode. In a trace a tool step's `tool_input` is the planner's informal task text (what
the checker re-executes through the executor, translation included).

Quality is the three metrics of reference/planner/metrics.py, recomputed from the step texts:
`correct` (the accuracy log's view) is the pass criterion, a completed episode whose final
answer equals the task's answer.

`executor='caller'` has the function-caller model (reference/planner/caller.py) write each
step's call instead of the deterministic translator; the metrics and the traces are the same.

Limits: submissions and the checker know the translator only (the caller is for evaluate and
bench so far).
"""
from __future__ import annotations

import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from reference.planner.env import MAX_STEP_TOKENS, PlannerEnv
from reference.workloads import Workload, answer_from_tools


@dataclass(frozen=True)
class PlannerWorkload(Workload):
    """nano-planner: schema-constrained JSON plans, a deterministic executor, three metrics."""
    name: str = "nano-planner"
    answer: str = "final answer"

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.planner.tasks import EVAL_PATH, load_tasks
        return load_tasks(Path(path) if path else EVAL_PATH)

    executors = ("translator", "caller")  # who writes a step's exact call (the first: default)

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2,
                 max_step_tokens: int | None = None, sandbox: dict | None = None,
                 executor: str = "translator") -> Iterator[Callable]:
        """`executor`: 'translator' (deterministic, reference/planner/executor.py) or 'caller'
        (the function-caller model, reference/planner/caller.py, loaded once here)."""
        if executor not in self.executors:
            raise ValueError(f"executor {executor!r}: one of {', '.join(self.executors)}")
        tokens = max(max_step_tokens or 0, MAX_STEP_TOKENS)  # never cut a schema-valid step
        caller = None
        if executor == "caller":
            from reference.planner.caller import load_caller
            caller = load_caller()
        yield lambda task: PlannerEnv(task.request, max_steps, tokens, caller=caller)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer is not None and answer == task.answer

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        from reference.planner.executor import execute
        return execute(tool, tool_input).observation, ""

    def step_problem(self, step: dict) -> str | None:
        from reference.planner.schema import parse_step
        parsed, why = parse_step(step["text"])
        if parsed is None:
            return f"the step is not schema-valid ({why})"
        if "final_answer" in parsed:
            return "a tool call in a final-answer step" if step["tool"] is not None else None
        if (step["tool"], step["tool_input"]) != (parsed["tool"], parsed["task"]):
            return "the tool call is not the one the step's text wrote"
        return None

    def answer_problem(self, episode: dict) -> str | None:
        from reference.planner.schema import parse_step
        if episode["stop_reason"] == "final_answer" and episode["steps"]:
            parsed, _ = parse_step(episode["steps"][-1]["text"])
            if parsed is None or parsed.get("final_answer") != episode["answer"]:
                return "the answer is not the one the last step's text writes"
        return None

    def secondary_row(self, task, steps: list[dict]) -> dict:
        """The episode scored by reference/planner/metrics.py from its step texts alone."""
        from reference.planner.metrics import score_episode
        score = score_episode(task, [s["text"] for s in steps])
        return {"passed": score.passed, "completed": score.completed,
                "tool_steps": score.tool_steps, "bad_steps": score.bad_steps}

    def secondary_metrics(self, rows: list[dict]) -> dict:
        tool = sum(r["tool_steps"] for r in rows)
        return {"bad_task_rate": sum(r["bad_steps"] for r in rows) / tool if tool else 0.0,
                "completion_rate": sum(bool(r["completed"]) for r in rows) / len(rows)
                if rows else 0.0}

    def uncomputed_answer(self, grader, task, episode: dict) -> dict | None:
        """Q407: the episode made at least the task's number of tool calls and its final answer
        is one of their results."""
        return answer_from_tools(episode, task.answer, task.n_calls, "executor", "results")

    def training(self, config):
        from reference.planner.training import planner_training
        return planner_training(config)

    def parse_mix(self, spec: str) -> dict:
        from reference.planner.tasks import parse_mix
        return parse_mix(spec)

    def check_train_options(self, config) -> str | None:
        for flag in ("variety", "broad", "replay", "miscopy"):
            if getattr(config, flag):
                return f"--{flag} does not apply to nano-planner"
        return None

    # --- evaluation ------------------------------------------------------------------------
    def report_row(self, task, result) -> dict:
        score = self.secondary_row(task, [{"text": s.text} for s in result.steps])
        return {"id": task.id, "template": task.template, "question": task.request,
                "expected": task.answer, "answer": result.answer,
                "correct": score["passed"], "completed": score["completed"],
                "tool_steps": score["tool_steps"], "bad_steps": score["bad_steps"],
                "stop_reason": result.stop_reason, "generated_tokens": result.generated_tokens,
                "mask_ms": round(sum(s.mask_ms for s in result.steps), 3),
                "latency_ms": round(result.latency_ms, 3)}

    def summarize(self, rows: list[dict]) -> dict:
        n = max(1, len(rows))
        tokens = sum(r["generated_tokens"] for r in rows)
        rates = self.secondary_metrics(rows)
        by_template: dict[str, list[bool]] = {}
        for r in rows:
            by_template.setdefault(r["template"], []).append(r["correct"])
        return {"n_tasks": len(rows),
                "accuracy": round(sum(r["correct"] for r in rows) / n, 4),   # = pass rate
                "pass_rate": round(sum(r["correct"] for r in rows) / n, 4),
                "bad_task_rate": round(rates["bad_task_rate"], 4),
                "completion_rate": round(rates["completion_rate"], 4),
                "mean_generated_tokens": round(statistics.fmean(
                    [r["generated_tokens"] for r in rows]), 4) if rows else 0.0,
                "mask_us_per_token": round(1e3 * sum(r["mask_ms"] for r in rows) / tokens, 2)
                if tokens else 0.0,
                "per_template": {k: round(sum(v) / len(v), 4)
                                 for k, v in sorted(by_template.items())}}

    def print_report(self, summary: dict) -> None:
        for k, v in summary.items():
            if k != "per_template":
                print(f"{k}: {v}")
        for k, v in summary.get("per_template", {}).items():
            print(f"  {k:32s} {v:.3f}")


WORKLOAD = PlannerWorkload()
