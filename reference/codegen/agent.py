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

The environment has ReactEnv's driver interface (prompt, cut, step, injection, done, result,
step_complete, max_step_tokens), so `reference.react.agent.run_env` and the batched engine
drive it unchanged; the result is an `EpisodeResult` whose steps are the attempts.

Limits: verification runs inline in the driver's thread (a pool of sandbox workers serves
concurrent drivers); this module holds no model code.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from reference.codegen.format import END, FEEDBACK, PROGRAM, TASK, parse_program, step_complete
from reference.codegen.sandbox import VerifyResult
from reference.codegen.tasks import CodeTask, miscopied_program, wrong_program
from reference.episode import EpisodeResult, StepRecord
from reference.workloads import TranscriptEnv
from reference.model import decode

MAX_ATTEMPTS = 3
MAX_STEP_TOKENS = 400      # tokens one attempt may take before it is cut off
TOOL = "python"            # the `tool` of an attempt's step in results and traces
@dataclass
class Attempt:
    program: str
    result: VerifyResult
    verify_ms: float


@dataclass
class CodegenResult(EpisodeResult):
    """An episode's result in the shape every driver, trace and report shares: each attempt is
    a step whose `tool` is `python`, `tool_input` the program and `observation` the feedback;
    `answer` is the last attempt's program (what LoadGen logs and the checker re-runs).
    `attempts` keeps the typed verdicts."""
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def output(self) -> str | None:
        """The output of the last attempt that ran."""
        for a in reversed(self.attempts):
            if a.result.output is not None:
                return a.result.output
        return None

    @property
    def passed_first(self) -> bool:
        return bool(self.attempts) and self.attempts[0].result.ok

    @property
    def solved(self) -> bool:
        return self.stop_reason == "solved"


class CodegenEnv(TranscriptEnv):
    """One episode's environment: feed it `Program:` ... `End` blocks, it verifies each one and
    answers a failed attempt with a `Feedback:` line (the same driver interface as ReactEnv)."""

    max_step_tokens = MAX_STEP_TOKENS
    step_complete = staticmethod(step_complete)

    def __init__(self, task: CodeTask, verifier, max_attempts: int = MAX_ATTEMPTS,
                 max_step_tokens: int = MAX_STEP_TOKENS):
        self.max_step_tokens = max_step_tokens
        self.task, self.verifier, self.max_attempts = task, verifier, max_attempts
        self.result = CodegenResult(task.prompt, transcript=f"{TASK}{task.prompt}\n")

    @staticmethod
    def cut(tokens: list[int]) -> tuple[str, int]:
        return decode(tokens), len(tokens)

    def submit_step(self, agent_text: str):
        """Start verifying an attempt off the caller's thread: a Future of (verdict, ms) that
        `step(agent_text, pending=...)` completes. The batched engine decodes the other
        episodes meanwhile, so a slow program stalls only its own row."""
        return self.verifier.submit(parse_program(agent_text), self.task.answer)

    def step(self, agent_text: str, pending=None) -> StepRecord:
        assert not self.done, "episode already ended"
        program = parse_program(agent_text)
        if pending is None:
            t0 = time.perf_counter()
            verdict = self.verifier.verify(program, self.task.answer)
            verify_ms = (time.perf_counter() - t0) * 1e3
        else:
            verdict, verify_ms = pending.result()
        self.result.attempts.append(Attempt(program, verdict, verify_ms))
        rec = StepRecord(text=agent_text, tool=TOOL, tool_input=program,
                         observation=feedback_line(verdict), tool_ms=verify_ms)
        self.result.steps.append(rec)
        self.result.answer = program
        self.result.transcript += agent_text
        if verdict.ok:
            self.result.stop_reason = "solved"
        elif len(self.result.attempts) >= self.max_attempts:
            self.result.stop_reason = "max_attempts"
        else:
            self.result.transcript += self.injection(rec)
        return rec

    @staticmethod
    def injection(rec: StepRecord) -> str:
        sep = "" if rec.text.endswith("\n") or not rec.text else "\n"
        return f"{sep}{FEEDBACK}{rec.observation}\n"


def feedback_line(verdict: VerifyResult) -> str:
    """The verifier's feedback (one line: what the agent reads and the trace records)."""
    return verdict.feedback


def trajectory(task: CodeTask, verifier, rng: random.Random | None = None,
               p_repair: float = 0.0, p_miscopy: float = 0.0) -> list[tuple[str, str]]:
    """Oracle trajectory as (role, text) segments; with probability p_repair a failed attempt
    and its real feedback come first, both masked out of the loss. `p_miscopy`: the share of
    those failed attempts that miscopy an argument (tasks.miscopied_program): the repair then
    copies it again from the task, not from the failed attempt."""
    segs = [("prompt", f"{TASK}{task.prompt}\n")]
    if rng is not None and rng.random() < p_repair:
        bad = None
        if p_miscopy and rng.random() < p_miscopy:
            bad = miscopied_program(rng, task.oracle, task.prompt)
        bad = bad or wrong_program(rng, task.oracle)
        verdict = verifier.verify(bad, task.answer)
        if not verdict.ok:
            segs.append(("agent_masked", f"{PROGRAM}\n{bad}\n{END}\n"))
            segs.append(("observation", f"{FEEDBACK}{feedback_line(verdict)}\n"))
    segs.append(("agent", f"{PROGRAM}\n{task.oracle}\n{END}\n"))
    return segs
