"""The nano-codegen episode: text format, environment (verifier + retry bound), trajectories.

    Task: Return the sum of [1, 2, 3, 4, 5]
    Program:
    result = sum([1, 2, 3, 4])
    End
    Feedback: Wrong output: 10
    Program:
    result = sum([1, 2, 3, 4, 5])
    End

The agent writes `Program:` ... `End` blocks; the environment verifies each one (syntax,
safety, sandboxed run, output check) and, on failure, appends `Feedback: <text>` so the next
attempt sees why the last one failed (the context grows with every retry). An episode ends
at the first correct program or after `max_attempts` (3) attempts.

Limits: the decoding loop and the batched engine drive this environment as they drive
ReactEnv; this module holds no model code.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from reference.codegen.sandbox import VerifyResult
from reference.codegen.tasks import CodeTask, wrong_program

MAX_ATTEMPTS = 3
TASK, PROGRAM, END, FEEDBACK = "Task: ", "Program:", "End", "Feedback: "


def parse_program(text: str) -> str:
    """The program inside an agent's `Program:` ... `End` block (lenient about the header)."""
    lines = text.split("\n")
    if lines and lines[0].strip() == PROGRAM:
        lines = lines[1:]
    body = []
    for line in lines:
        if line.strip() == END:
            break
        body.append(line)
    return "\n".join(body).strip("\n")


def step_complete(text: str) -> bool:
    """True once the agent has closed its program with an `End` line."""
    return text.endswith(f"\n{END}\n") or text == f"{END}\n"


@dataclass
class Attempt:
    program: str
    result: VerifyResult
    verify_ms: float
    context_tokens: int = 0
    generated_tokens: int = 0
    generation_ms: float = 0.0


@dataclass
class CodegenResult:
    prompt: str
    attempts: list[Attempt] = field(default_factory=list)
    stop_reason: str = "running"  # solved | max_attempts | context_full
    transcript: str = ""

    @property
    def answer(self) -> str | None:
        """The output of the last attempt that ran (what the benchmark scores)."""
        for a in reversed(self.attempts):
            if a.result.output is not None:
                return a.result.output
        return None

    @property
    def passed_first(self) -> bool:
        return bool(self.attempts) and self.attempts[0].result.ok


class CodegenEnv:
    def __init__(self, task: CodeTask, verifier, max_attempts: int = MAX_ATTEMPTS):
        self.task, self.verifier, self.max_attempts = task, verifier, max_attempts
        self.result = CodegenResult(task.prompt, transcript=f"{TASK}{task.prompt}\n")

    @property
    def done(self) -> bool:
        return self.result.stop_reason != "running"

    def prompt(self) -> str:
        return self.result.transcript

    def step(self, agent_text: str) -> Attempt:
        assert not self.done, "episode already ended"
        program = parse_program(agent_text)
        t0 = time.perf_counter()
        verdict = self.verifier.verify(program, self.task.answer)
        att = Attempt(program, verdict, (time.perf_counter() - t0) * 1e3)
        self.result.attempts.append(att)
        self.result.transcript += agent_text
        if verdict.ok:
            self.result.stop_reason = "solved"
        elif len(self.result.attempts) >= self.max_attempts:
            self.result.stop_reason = "max_attempts"
        else:
            self.result.transcript += self.injection(att)
        return att

    @staticmethod
    def injection(att: Attempt) -> str:
        return f"{FEEDBACK}{' '.join(att.result.feedback.splitlines())}\n"


def trajectory(task: CodeTask, verifier, rng: random.Random | None = None,
               p_repair: float = 0.0) -> list[tuple[str, str]]:
    """Oracle trajectory as (role, text) segments; with probability p_repair a failed attempt
    and its real feedback come first, both masked out of the loss."""
    segs = [("prompt", f"{TASK}{task.prompt}\n")]
    if rng is not None and rng.random() < p_repair:
        bad = wrong_program(rng, task.oracle)
        verdict = verifier.verify(bad, task.answer)
        if not verdict.ok:
            segs.append(("agent_masked", f"{PROGRAM}\n{bad}\n{END}\n"))
            segs.append(("observation", f"{FEEDBACK}{verdict.feedback}\n"))
    segs.append(("agent", f"{PROGRAM}\n{task.oracle}\n{END}\n"))
    return segs
