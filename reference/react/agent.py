"""The nano-react episode: its environment (tools + parser) and the greedy decoding loop.

    from reference.react.agent import run_episode
    result = run_episode(model, "What is pi times 2?")
    result.answer, result.stop_reason, result.steps

`ReactEnv` is the environment alone, text in and text out, so any driver (the decoding loop
here, the batched engine, a test writing agent text by hand) gets the same semantics:
the question line starts the context; each agent step is parsed; an action runs the real tool
and comes back as an `Observation: ...` line; an unknown tool or an unparsable step becomes an
`Error: ...` observation; `Final Answer:` ends the episode; `max_steps` steps without one end
it with stop_reason `max_steps`.

`run_episode` drives the environment greedily with reference.episode.run_env (the driver every
workload shares), the KV cache kept across steps.

Limits: greedy decoding only.
"""
from __future__ import annotations

import time

import torch

from reference.episode import EpisodeResult, StepRecord, run_env
from reference.workloads import TranscriptEnv
from reference.model import GPT, decode, encode
from reference.react.format import observation_line, parse_step, question_line, step_complete
from reference.tools import run_tool

MAX_STEPS = 8              # agent steps (tool calls + final answer) allowed per episode
MAX_STEP_TOKENS = 160      # tokens the agent may write in one step before it is cut off


class ReactEnv(TranscriptEnv):
    """One episode's environment: feed it agent steps, it answers with observation lines.

    The driver interface (shared with the codegen environment): prompt(), cut(tokens),
    step(text), injection(record), done, result, step_complete(text), max_step_tokens."""

    max_step_tokens = MAX_STEP_TOKENS
    step_complete = staticmethod(step_complete)

    def __init__(self, question: str, max_steps: int = MAX_STEPS,
                 max_step_tokens: int = MAX_STEP_TOKENS):
        self.result = EpisodeResult(question)
        self.max_steps, self.max_step_tokens = max_steps, max_step_tokens
        self.result.transcript = question_line(question)

    def step(self, agent_text: str) -> StepRecord:
        """Apply one agent step; returns its record (observation set unless the episode ended).

        The text the environment adds to the context is `record.observation` as a line,
        preceded by a newline if the agent's text did not end its own line."""
        assert not self.done, "episode already ended"
        rec = StepRecord(text=agent_text)
        self.result.steps.append(rec)
        self.result.transcript += agent_text
        parsed = parse_step(agent_text)
        if parsed.kind == "final":
            self.result.answer, self.result.stop_reason = parsed.answer, "final_answer"
            return rec
        t0 = time.perf_counter()
        if parsed.kind == "action":
            rec.tool, rec.tool_input = parsed.tool, parsed.tool_input
            rec.observation = run_tool(parsed.tool, parsed.tool_input)
        else:
            rec.observation = parsed.error
        return self.observed(rec, t0)

    @staticmethod
    def cut(tokens: list[int]) -> tuple[str, int]:
        return cut_step(tokens)

    @staticmethod
    def injection(rec: StepRecord) -> str:
        """The text appended to the context after an agent step that did not end the episode."""
        sep = "" if rec.text.endswith("\n") or not rec.text else "\n"
        return sep + observation_line(rec.observation)


def cut_step(tokens: list[int]) -> tuple[str, int]:
    """The agent text to keep from a step, and how many tokens of it to keep.

    If the last line starts `Observation:` the agent began writing the environment's line:
    that line is dropped (the environment writes the real one)."""
    text = decode(tokens)
    body = text.rstrip("\n")
    last = body.rsplit("\n", 1)[-1]
    if last.startswith("Observation:"):
        keep = text[: len(body) - len(last)]
        return keep, len(encode(keep))
    return text, len(tokens)


@torch.no_grad()
def run_episode(model: GPT, question: str, max_steps: int = MAX_STEPS,
                naive: bool = False) -> EpisodeResult:
    """Greedy closed-loop nano-react episode (see run_env)."""
    return run_env(model, ReactEnv(question, max_steps), naive=naive)
