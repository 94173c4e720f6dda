"""What a workload (benchmark) is, and the registry of them: the one place that tells them apart.

    from reference.workloads import get_workload
    w = get_workload("nano-codegen")
    tasks = w.load_tasks(path)                       # the frozen set (or any task file)
    with w.episodes(max_steps=3) as make_env:        # owns what episodes share (a sandbox pool)
        env = make_env(tasks[0])                     # ReactEnv / CodegenEnv: the driver interface
    w.correct(grader, task, answer)                  # scoring a logged answer (no torch)
    w.reexecute(grader, task, tool, tool_input)      # a logged tool call, run again

A workload is a task set + an environment (the agent loop's other half) + a scorer, each a small
callable, as in inspect_ai. The built-in ones are listed in WORKLOADS; a benchmark in rules.yaml
may name its own implementation (`workload: package.module`, a module with a `WORKLOAD`
object, which the harness passes to `get_workload`), so adding one touches its package,
rules.yaml and rules.md, not this file.

Nothing here imports torch: the checker grades through this module.

Limits: the training side (trajectory streams, validation tasks) still lives in reference/train.py.
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


class UnknownWorkload(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Workload(Protocol):
    name: str
    answer: str                 # what the response payload is: "final answer" | "program"

    def load_tasks(self, path: Path | None = None) -> list: ...
    def question(self, task) -> str: ...
    def episodes(self, max_steps: int, verifier_workers: int = 2): ...
    def correct(self, grader, task, answer: str | None) -> bool: ...
    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]: ...

    @property
    def default_checkpoint(self) -> Path: ...


@dataclass(frozen=True)
class ReactWorkload:
    """nano-react: questions answered through the four seed tools; exact-match answers."""
    name: str = "nano-react"
    answer: str = "final answer"

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.react.tasks import EVAL_PATH, load_eval_set
        return load_eval_set(Path(path) if path else EVAL_PATH)

    def question(self, task) -> str:
        return task.question

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2) -> Iterator[Callable]:
        from reference.react.agent import ReactEnv
        yield lambda task: ReactEnv(task.question, max_steps)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer == task.answer

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        """(the fresh observation, or None when the tool cannot be re-run; a note)."""
        from reference.tools import run_tool
        return run_tool(tool, tool_input), ""

    @property
    def default_checkpoint(self) -> Path:
        return CHECKPOINT_DIR / self.name / "model.pt"


@dataclass(frozen=True)
class CodegenWorkload:
    """nano-codegen: programs verified in the sandbox, retried with feedback; the payload is the
    last program, correct when the verifier runs it to the expected output."""
    name: str = "nano-codegen"
    answer: str = "program"
    tool: str = "python"        # the `tool` of an attempt's step in traces

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.codegen.tasks import EVAL_PATH, load_eval_set
        return load_eval_set(Path(path) if path else EVAL_PATH)

    def question(self, task) -> str:
        return task.prompt

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2) -> Iterator[Callable]:
        from reference.codegen.agent import CodegenEnv
        from reference.codegen.sandbox import Verifier
        with Verifier(workers=verifier_workers) as verifier:
            yield lambda task: CodegenEnv(task, verifier, max_attempts=max_steps)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer is not None and grader.verify(answer, task.answer).ok

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        if tool != self.tool:
            return None, f"(no tool {tool!r} in {self.name}; attempts use {self.tool!r})"
        return grader.verify(tool_input, task.answer).feedback, ""

    @property
    def default_checkpoint(self) -> Path:
        return CHECKPOINT_DIR / self.name / "model.pt"


# The built-in workloads. Others come from rules.yaml (`workload: <module>`, see get_workload).
WORKLOADS: dict[str, Any] = {"nano-react": ReactWorkload(), "nano-codegen": CodegenWorkload()}


def get_workload(name: str, module: str | None = None) -> Workload:
    """The workload of a benchmark name (`module`: where rules.yaml says a workload that is not
    built in lives); an unknown name is an error listing the known ones."""
    w = WORKLOADS.get(name)
    if w is None and module:
        w = importlib.import_module(module).WORKLOAD
        if w.name != name:
            raise UnknownWorkload(f"{module}.WORKLOAD is named {w.name!r}, not {name!r}")
        WORKLOADS[name] = w
    if w is None:
        raise UnknownWorkload(f"unknown benchmark {name!r}; known: {', '.join(WORKLOADS)}")
    return w


def register(workload) -> None:
    """Add a workload object (its `name` is its key); for workloads outside rules.yaml."""
    WORKLOADS[workload.name] = workload
