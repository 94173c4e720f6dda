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

`run_episode` drives the environment with a model and a KV cache that persists across steps:
the question is prefilled, the agent decodes until its step is actionable (an `Action Input:`
or `Final Answer:` line), and each observation is prefilled as new tokens only. A context that
reaches block_size ends the episode with stop_reason `context_full`.

Limits: one episode at a time (batched decoding is the engine's job); greedy decoding only.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from reference.model import GPT, decode, encode
from reference.react.format import observation_line, parse_step, question_line, step_complete
from reference.tools import run_tool

MAX_STEPS = 8              # agent steps (tool calls + final answer) allowed per episode
MAX_STEP_TOKENS = 160      # tokens the agent may write in one step before it is cut off
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


class ReactEnv:
    """One episode's environment: feed it agent steps, it answers with observation lines.

    The driver interface (shared with the codegen environment): prompt(), cut(tokens),
    step(text), injection(record), done, result, step_complete(text), max_step_tokens."""

    max_step_tokens = MAX_STEP_TOKENS
    step_complete = staticmethod(step_complete)

    def __init__(self, question: str, max_steps: int = MAX_STEPS):
        self.result = EpisodeResult(question)
        self.max_steps = max_steps
        self.result.transcript = question_line(question)

    @property
    def done(self) -> bool:
        return self.result.stop_reason != "running"

    def prompt(self) -> str:
        return self.result.transcript

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
        rec.tool_ms = (time.perf_counter() - t0) * 1e3
        self.result.transcript += self.injection(rec)
        if len(self.result.steps) >= self.max_steps:
            self.result.stop_reason = "max_steps"
        return rec

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


def finish_step(env, out: list[int], ctx0: int, kv0: int, gen_ms: float,
                full: bool, block_size: int, pending=None) -> tuple[int, list[int] | None]:
    """Close one agent step of `out` tokens that began at context length ctx0.

    Returns (how many of the step's tokens stay in context, the tokens to inject next, or None
    when the episode has ended). Shared by the single-episode loop and the batched engine.
    `pending`: the environment's off-thread work for this step (env.submit_step), if any."""
    text, n_keep = env.cut(out)
    if full:
        env.result.steps.append(StepRecord(text=text, context_tokens=ctx0, kv_cache_bytes=kv0,
                                           generated_tokens=len(out), generation_ms=gen_ms))
        env.result.transcript += text
        env.result.stop_reason = "context_full"
        return n_keep, None
    n_steps = len(env.result.steps)
    try:
        rec = env.step(text) if pending is None else env.step(text, pending=pending)
        rec.context_tokens, rec.kv_cache_bytes = ctx0, kv0
        rec.generated_tokens, rec.generation_ms = len(out), gen_ms
        if env.done:
            return n_keep, None
        inject = encode(env.injection(rec))
    except Exception as err:  # noqa: BLE001: one episode's content must never end the batch
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
def run_episode(model: GPT, question: str, max_steps: int = MAX_STEPS,
                naive: bool = False) -> EpisodeResult:
    """Greedy closed-loop nano-react episode (see run_env)."""
    return run_env(model, ReactEnv(question, max_steps), naive=naive)


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
    while not env.done:
        ctx0, kv0 = ctx.length, ctx.kv_bytes()
        t0 = time.perf_counter()
        out: list[int] = []
        full = False
        while len(out) < env.max_step_tokens:
            if ctx.length >= block:
                full = True
                break
            tok = int(torch.argmax(logits))
            out.append(tok)
            logits = ctx.feed([tok])
            if tok == NEWLINE and env.step_complete(decode(out)):
                break
        n_keep, inject = finish_step(env, out, ctx0, kv0, (time.perf_counter() - t0) * 1e3,
                                     full, block)
        ctx.truncate(ctx0 + n_keep)
        if inject is None:
            break
        logits = ctx.feed(inject)
    env.result.latency_ms = (time.perf_counter() - t_start) * 1e3
    return env.result
