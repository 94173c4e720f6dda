"""One nano-planner episode: the planner decoded under the step schema, the executor between.

    from reference.planner.agent import run_episode
    ep = run_episode(model, constraint, "What is pi plus e, times 3?")
    ep.steps, ep.answer, ep.stop_reason

The context is `Request: ...\\n`, then per step the planner's JSON object (every byte chosen
greedily among the bytes `StepConstraint` allows, so the step is schema-valid by
construction) and the environment's `\\nResult: <observation>\\n` (prefilled in one chunk; the
KV cache persists across steps). A final-answer step ends the episode (`final`); MAX_STEPS
steps without one end it with `max_steps`; a context that would pass the model's block_size
ends it with `context_full`. The log (`steps`) is what reference/planner/metrics.py scores.

Limits: greedy, one episode at a time (the batched engine's per-row constraint is integration
work, see README.md); the deterministic executor only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from reference.model import GPT, encode
from reference.planner.constraint import StepConstraint
from reference.planner.executor import execute
from reference.planner.metrics import MAX_STEPS
from reference.planner.schema import MAX_STEP_BYTES, parse_step
from reference.planner.tasks import request_line, result_line


@dataclass
class PlannerEpisode:
    request: str
    steps: list[str] = field(default_factory=list)         # planner step texts, as decoded
    observations: list[str] = field(default_factory=list)  # executor results, one per tool step
    answer: str | None = None
    stop_reason: str = "running"
    planner_tokens: int = 0
    mask_s: float = 0.0   # masking, the greedy pick and advancing the matcher, per token summed
    gen_s: float = 0.0    # model forwards of the planner's own tokens
    exec_s: float = 0.0   # executor + tool time


@torch.no_grad()
def run_episode(model: GPT, constraint: StepConstraint, request: str,
                max_steps: int = MAX_STEPS) -> PlannerEpisode:
    ep = PlannerEpisode(request)
    device = next(model.parameters()).device
    block = model.config.block_size
    cache = model.new_cache(1)
    prompt = encode(request_line(request))
    logits = model(torch.tensor([prompt], device=device), cache=cache, last_only=True)[0, -1]
    bias = constraint.bias(device)  # (S, 256): 0 allowed, -inf forbidden
    for _ in range(max_steps):
        if cache.length + MAX_STEP_BYTES >= block:
            ep.stop_reason = "context_full"
            return ep
        m = constraint.matcher()
        while not m.is_done():
            t = time.perf_counter()
            b = int((logits + bias[m.state]).argmax())
            m.advance(b)
            ep.mask_s += time.perf_counter() - t
            t = time.perf_counter()
            logits = model(torch.tensor([[b]], device=device), cache=cache)[0, -1]
            ep.gen_s += time.perf_counter() - t
            ep.planner_tokens += 1
        text = m.text()
        ep.steps.append(text)
        step, why = parse_step(text)
        assert step is not None, f"constrained decoding produced an invalid step: {why}"
        if "final_answer" in step:
            ep.answer, ep.stop_reason = step["final_answer"], "final"
            return ep
        t = time.perf_counter()
        obs = execute(step["tool"], step["task"]).observation
        ep.exec_s += time.perf_counter() - t
        ep.observations.append(obs)
        inject = encode(result_line(obs))
        if cache.length + len(inject) + 1 >= block:
            ep.stop_reason = "context_full"
            return ep
        logits = model(torch.tensor([inject], device=device), cache=cache, last_only=True)[0, -1]
    ep.stop_reason = "max_steps"
    return ep
