"""One nano-planner episode's environment (the driver interface of reference.episode): the
planner writes one schema-constrained JSON step at a time, the executor turns it into a tool
call, and its result is the next observation. Torch-free at import."""
from __future__ import annotations

import time
from functools import lru_cache

from reference.workloads import TranscriptEnv

MAX_STEP_TOKENS = 264  # the schema's longest step (schema.MAX_STEP_BYTES, 263) and one spare


@lru_cache(maxsize=1)
def step_constraint():
    from reference.planner.constraint import StepConstraint
    return StepConstraint()


class PlannerEnv(TranscriptEnv):
    """One nano-planner episode's environment (the driver interface, plus `constraint`).

    `constrained=False` (bench's comparison only) leaves the planner's bytes free; a step then
    ends at the first `}` after which the text is a whole valid step."""

    step_end = ord("}")

    def __init__(self, request: str, max_steps: int, max_step_tokens: int = MAX_STEP_TOKENS,
                 constrained: bool = True, caller=None):
        from reference.episode import EpisodeResult
        from reference.planner.tasks import request_line
        self.constraint = step_constraint() if constrained else None
        self.caller = caller  # a FunctionCaller writes the calls (None: the translator does)
        self.result = EpisodeResult(request)
        self.max_steps, self.max_step_tokens = max_steps, max_step_tokens
        self.result.transcript = request_line(request)

    @staticmethod
    def step_complete(text: str) -> bool:
        """Without the constraint: the text so far is one whole valid step."""
        from reference.planner.schema import parse_step
        return parse_step(text)[0] is not None

    @staticmethod
    def cut(tokens: list[int]) -> tuple[str, int]:
        from reference.model import decode
        return decode(tokens), len(tokens)

    def step(self, text: str):
        from reference.episode import StepRecord
        from reference.planner.executor import execute
        from reference.planner.schema import parse_step
        assert not self.done, "episode already ended"
        rec = StepRecord(text=text)
        self.result.steps.append(rec)
        self.result.transcript += text
        step, why = parse_step(text)
        if step is not None and "final_answer" in step:
            self.result.answer, self.result.stop_reason = step["final_answer"], "final_answer"
            return rec
        t0 = time.perf_counter()
        if step is None:
            rec.observation = f"Error: not a valid step ({why})"
        else:
            rec.tool, rec.tool_input = step["tool"], step["task"]
            run = execute if self.caller is None else self.caller.execute
            out = run(step["tool"], step["task"])
            rec.observation, rec.executor_ms = out.observation, out.translate_s * 1e3
        return self.observed(rec, t0)

    @staticmethod
    def injection(rec) -> str:
        from reference.planner.tasks import result_line
        return result_line(rec.observation)
