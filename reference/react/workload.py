"""nano-react: the workload (reference.workloads.Workload) that rules.yaml names for it.
Nothing at module level imports torch: the checker grades through it."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from reference.workloads import Workload, answer_from_tools


@dataclass(frozen=True)
class ReactWorkload(Workload):
    """nano-react: questions answered through the four seed tools; exact-match answers."""
    name: str = "nano-react"
    answer: str = "final answer"
    report: str = "reference.react.report"

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.react.tasks import EVAL_PATH, load_eval_set
        return load_eval_set(Path(path) if path else EVAL_PATH)

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2,
                 max_step_tokens: int | None = None, sandbox: dict | None = None
                 ) -> Iterator[Callable]:
        from reference.react.agent import MAX_STEP_TOKENS, ReactEnv
        tokens = max_step_tokens or MAX_STEP_TOKENS
        yield lambda task: ReactEnv(task.question, max_steps, tokens)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer == task.answer

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        from reference.tools import run_tool
        return run_tool(tool, tool_input), ""

    def step_problem(self, step: dict) -> str | None:
        from reference.react.format import parse_step_cached
        parsed = parse_step_cached(step["text"])
        if parsed.kind == "action" and \
                (step["tool"], step["tool_input"]) != (parsed.tool, parsed.tool_input):
            return "the tool call is not the one the step's text wrote"
        if parsed.kind != "action" and step["tool"] is not None:
            return "a tool call in a step whose text calls no tool"
        return None

    def answer_problem(self, episode: dict) -> str | None:
        from reference.react.format import parse_step_cached
        if episode["stop_reason"] == "final_answer" and episode["steps"] and \
                parse_step_cached(episode["steps"][-1]["text"]).answer != episode["answer"]:
            return "the answer is not the one the last step's text writes"
        return None

    def uncomputed_answer(self, grader, task, episode: dict) -> dict | None:
        """The episode made at least the task's number of tool calls and its final answer is
        one of its tools' observations."""
        return answer_from_tools(episode, task.answer, getattr(task, "n_tool_calls", 1) or 1,
                                 "agent", "observations")

    def training(self, config):
        from reference.react.training import react_training
        return react_training(config)

    def parse_mix(self, spec: str) -> dict:
        from reference.react.tasks import parse_mix
        return parse_mix(spec)

    def check_train_options(self, config) -> str | None:
        if config.variety:
            return "--variety applies to nano-codegen only (nano-react: --broad)"
        if config.miscopy:
            return "--miscopy applies to nano-codegen only"
        if config.replay:
            return "--replay replays nano-react's data into another workload's training"
        return None


WORKLOAD = ReactWorkload()
