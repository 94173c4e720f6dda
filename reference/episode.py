"""The episode driver every workload shares: step records, the episode result, and the greedy
closed loop that drives any environment.

    from reference.episode import run_env
    result = run_env(model, env)          # env: ReactEnv, CodegenEnv, any workload's environment
    result.answer, result.stop_reason, result.steps

An environment has the driver interface: prompt(), cut(tokens), step(text), injection(record),
done, result, step_complete(text), max_step_tokens (see reference.react.agent.ReactEnv);
optionally `step_end`, the byte after which a driver asks step_complete (default newline).
Optionally `constraint`: an automaton over the 256 bytes (reference.planner.constraint.
StepConstraint: `bias(device)` a (states, 256) table of 0 / -inf, `matcher()` one per step
with `state`, `advance(byte)`, `is_done()`); each step is then decoded under it, greedily among
the allowed bytes, and ends exactly when the automaton accepts (nano-planner's JSON steps).
`finish_step` closes one agent step for both drivers, `run_env` here (one episode) and the
batched engine (reference.engine).

`run_env` keeps the KV cache across steps: the prompt is prefilled, the agent decodes until its
step is actionable, and each observation is prefilled as new tokens only. A context that
reaches block_size ends the episode with stop_reason `context_full`; an environment that raises
ends only its own episode (`env_error`).

Limits: one episode at a time (batched decoding is the engine's job); greedy decoding only.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from reference.model import GPT, decode, encode

NEWLINE = ord("\n")


@dataclass
class StepRecord:
    """Content and systems metrics of one agent step."""
    text: str                        # what the agent wrote (after any cut)
    tool: str | None = None
    tool_input: str | None = None
    observation: str | None = None   # what the environment answered (None after a final answer)
    tool_ms: float = 0.0
    context_tokens: int = 0          # tokens in context when the step started
    kv_cache_bytes: int = 0          # KV-cache bytes in use when the step started
    generated_tokens: int = 0
    generation_ms: float = 0.0
    mask_ms: float = 0.0             # constrained decoding: computing and applying the masks
    executor_ms: float = 0.0         # nano-planner: translating the step into a tool call


@dataclass
class EpisodeResult:
    question: str
    answer: str | None = None
    stop_reason: str = "running"     # final_answer | max_steps | context_full | env_error
    steps: list[StepRecord] = field(default_factory=list)
    latency_ms: float = 0.0
    transcript: str = ""

    @property
    def generated_tokens(self) -> int:
        return sum(s.generated_tokens for s in self.steps)

    def to_dict(self) -> dict:
        return asdict(self)


def finish_step(env, out: list[int], ctx0: int, kv0: int, gen_ms: float,
                full: bool, block_size: int, pending=None, mask_ms: float = 0.0
                ) -> tuple[int, list[int] | None]:
    """Close one agent step of `out` tokens that began at context length ctx0.

    Returns (how many of the step's tokens stay in context, the tokens to inject next, or None
    when the episode has ended). Shared by the single-episode loop and the batched engine.
    `pending`: the environment's off-thread work for this step (env.submit_step), if any;
    `mask_ms`: the step's constrained-decoding time (inside gen_ms)."""
    text, n_keep = env.cut(out)
    if full:
        env.result.steps.append(StepRecord(text=text, context_tokens=ctx0, kv_cache_bytes=kv0,
                                           generated_tokens=len(out), generation_ms=gen_ms,
                                           mask_ms=mask_ms))
        env.result.transcript += text
        env.result.stop_reason = "context_full"
        return n_keep, None
    n_steps = len(env.result.steps)
    try:
        rec = env.step(text) if pending is None else env.step(text, pending=pending)
        rec.context_tokens, rec.kv_cache_bytes = ctx0, kv0
        rec.generated_tokens, rec.generation_ms, rec.mask_ms = len(out), gen_ms, mask_ms
        if env.done:
            return n_keep, None
        inject = encode(env.injection(rec))
    except Exception as err:  # noqa: BLE001  one episode's content must never end the batch
        _env_failed(env, n_steps, text, ctx0, kv0, len(out), gen_ms, err)
        return n_keep, None
    if ctx0 + n_keep + len(inject) >= block_size:
        env.result.stop_reason = "context_full"
        return n_keep, None
    return n_keep, inject


def _env_failed(env, n_steps: int, text: str, ctx0: int, kv0: int, n_out: int, gen_ms: float,
                err: Exception) -> None:
    """End an episode whose environment raised while answering a step: stop reason
    `env_error` and a trace entry naming the exception; the other episodes go on."""
    note = f"Error: the environment failed on this step ({type(err).__name__})"
    if len(env.result.steps) > n_steps:
        env.result.steps[-1].observation = note
    else:
        env.result.steps.append(StepRecord(text=text, observation=note, context_tokens=ctx0,
                                           kv_cache_bytes=kv0, generated_tokens=n_out,
                                           generation_ms=gen_ms))
    env.result.stop_reason = "env_error"


class _CachedContext:
    """The episode's context in a KV cache: each token is processed once."""

    def __init__(self, model: GPT):
        self.model, self.cache = model, model.new_cache(1)
        self.device = next(model.parameters()).device

    @property
    def length(self) -> int:
        return self.cache.length

    def kv_bytes(self) -> int:
        return self.cache.nbytes_used()

    def feed(self, tokens: list[int]) -> torch.Tensor:
        idx = torch.tensor([tokens], dtype=torch.long, device=self.device)
        return self.model(idx, cache=self.cache, last_only=True)[0, -1]

    def truncate(self, n: int) -> None:
        self.cache.truncate(n)


class _NaiveContext:
    """The seed-faithful baseline: the whole context is recomputed for every token."""

    def __init__(self, model: GPT):
        self.model, self.tokens = model, []
        self.device = next(model.parameters()).device

    @property
    def length(self) -> int:
        return len(self.tokens)

    def kv_bytes(self) -> int:
        return 0  # nothing is cached

    def feed(self, tokens: list[int]) -> torch.Tensor:
        self.tokens.extend(tokens)
        idx = torch.tensor([self.tokens], dtype=torch.long, device=self.device)
        return self.model(idx, last_only=True)[0, -1]

    def truncate(self, n: int) -> None:
        del self.tokens[n:]


@torch.no_grad()
def run_env(model: GPT, env, naive: bool = False) -> EpisodeResult:
    """Drive one environment (ReactEnv, CodegenEnv) greedily to its end. By default the KV
    cache persists across steps; with naive=True the whole context is recomputed for every
    generated token (the baseline)."""
    t_start = time.perf_counter()
    block = model.config.block_size
    ctx = _NaiveContext(model) if naive else _CachedContext(model)
    prompt = encode(env.prompt())
    if len(prompt) >= block:
        env.result.stop_reason = "context_full"
        return env.result
    logits = ctx.feed(prompt)
    constraint = getattr(env, "constraint", None)
    bias = constraint.bias(logits.device) if constraint is not None else None
    end = getattr(env, "step_end", NEWLINE)  # the byte after which step_complete is asked
    while not env.done:
        ctx0, kv0 = ctx.length, ctx.kv_bytes()
        t0 = time.perf_counter()
        out: list[int] = []
        full = False
        matcher = constraint.matcher() if constraint is not None else None
        mask_s = 0.0
        while len(out) < env.max_step_tokens:
            if ctx.length >= block:
                full = True
                break
            if matcher is None:
                tok = int(torch.argmax(logits))
            else:
                t = time.perf_counter()
                tok = int(torch.argmax(logits + bias[matcher.state]))
                matcher.advance(tok)
                mask_s += time.perf_counter() - t
            out.append(tok)
            logits = ctx.feed([tok])
            if matcher is not None:
                if matcher.is_done():
                    break
            elif tok == end and env.step_complete(decode(out)):
                break
        n_keep, inject = finish_step(env, out, ctx0, kv0, (time.perf_counter() - t0) * 1e3,
                                     full, block, mask_ms=mask_s * 1e3)
        ctx.truncate(ctx0 + n_keep)
        if inject is None:
            break
        logits = ctx.feed(inject)
    env.result.latency_ms = (time.perf_counter() - t_start) * 1e3
    return env.result
