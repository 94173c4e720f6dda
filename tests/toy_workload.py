"""A toy workload, registered the way a third benchmark would be: a module with a WORKLOAD
object that rules.yaml names (`workload: tests.toy_workload`). The agent reads `Echo: <word>`
and answers with one line; the answer is correct when it is the word. Nothing outside this
module (and a rules.yaml entry) knows about it."""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reference.workloads import TranscriptEnv


@dataclass(frozen=True)
class EchoTask:
    id: str
    question: str
    answer: str


class EchoEnv(TranscriptEnv):
    """One step: the agent's first line is its answer."""
    max_step_tokens = 16

    def __init__(self, task: EchoTask):
        from reference.episode import EpisodeResult
        self.result = EpisodeResult(task.question, transcript=f"Echo: {task.question}\n")

    @staticmethod
    def step_complete(text: str) -> bool:
        return text.endswith("\n")

    @staticmethod
    def cut(tokens):
        from reference.model import decode
        return decode(tokens), len(tokens)

    def step(self, text: str):
        from reference.episode import StepRecord
        rec = StepRecord(text=text)
        self.result.steps.append(rec)
        self.result.transcript += text
        self.result.answer, self.result.stop_reason = text.strip(), "final_answer"
        return rec

    @staticmethod
    def injection(rec) -> str:
        return ""


@dataclass(frozen=True)
class EchoWorkload:
    name: str = "toy-echo"
    answer: str = "final answer"

    def load_tasks(self, path: Path | None = None) -> list:
        return [EchoTask(**json.loads(line)) for line in Path(path).read_text().splitlines()]

    def question(self, task) -> str:
        return task.question

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2, max_step_tokens=None,
                 sandbox=None):
        yield EchoEnv

    def correct(self, grader, task, answer):
        return answer == task.answer

    def reexecute(self, grader, task, tool, tool_input):
        return None, "(toy-echo has no tools)"

    @property
    def default_checkpoint(self) -> Path:
        return Path("toy.pt")


WORKLOAD = EchoWorkload()
