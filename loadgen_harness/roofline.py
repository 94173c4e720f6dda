"""A roofline for the agent engine: what the machine could do for these episodes, and how much
of it the engine does.

    from loadgen_harness.roofline import machine_limits, episode_work, bound
    m = machine_limits(threads=2)                     # measured now: matmul FLOP/s, copy GB/s
    w = episode_work(model.config, results, batch=64)  # FLOPs and bytes per episode, from traces
    b = bound(m, w)                                    # episodes/s the machine allows

Work per episode is counted from the model's shapes and the episodes' own step records
(context length when each step started, tokens generated), not from a profiler:
- FLOPs: every processed token costs 2 x (the block matmul weights) plus attention, 4 x C x
  (positions it attends) per layer; the language-model head (2 x C x 256) is paid for every
  decoded token and once per prefill (the engine asks only the last prefill position).
- Bytes: one decode step of a batch reads every weight once (shared by the `batch` rows it
  decodes, so a row's share is weights / batch), and each row reads its own K and V up to its
  position and writes one position; a prefill reads the weights once and the cache likewise.
  That is one token per row and forward, the autoregressive decode the bound is stated for.
  An engine that checks drafts decodes `tokens_per_forward` tokens per row and forward and
  reads weights and cache once for all of them: `episode_work(..., tokens_per_forward=f)`
  divides those reads by f, the bound of that engine's own algorithm (bench prints both).
The bound is the slower of the two roofs, FLOPs / matmul rate and bytes / copy bandwidth,
measured in the same process with the same threads; the engine's fraction is its measured
episodes/s over that bound.

Limits: an idealised bound (perfect overlap of compute and memory, no per-step overhead, no
tool time); observation tokens are counted from the next step's start, so text the engine cut
and re-fed counts once. fp32 weights and cache are assumed unless the model says otherwise.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class MachineLimits:
    matmul_gflops: float      # fp32 GEMM, 1024 x 1024, the threads given
    copy_gbps: float          # bytes read + written per second by a 256 MiB tensor copy
    threads: int


@dataclass(frozen=True)
class EpisodeWork:
    episodes: int
    tokens_decoded: float     # per episode
    tokens_prefilled: float   # per episode
    gflop: float              # per episode
    gbytes: float             # per episode
    batch: int                # rows sharing one decode step's weight reads
    tokens_per_forward: float = 1.0  # tokens decoded per row and decode forward


def _best_rate(fn, work: float, repeats: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return work / best


def machine_limits(threads: int, repeats: int = 5) -> MachineLimits:
    """The machine's fp32 matmul rate and memory bandwidth, measured now (best of `repeats`)."""
    torch.set_num_threads(threads)
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    gflops = _best_rate(lambda: torch.mm(a, b), 2 * n**3 / 1e9, repeats)
    src = torch.empty(64 * 2**20, dtype=torch.float32)  # 256 MiB: larger than any cache
    src.fill_(1.0)
    dst = torch.empty_like(src)
    gbps = _best_rate(lambda: dst.copy_(src), 2 * src.numel() * 4 / 1e9, repeats)
    return MachineLimits(round(gflops, 1), round(gbps, 2), threads)


def episode_work(config, results, batch: int, bytes_per_value: int = 4,
                 tokens_per_forward: float = 1.0) -> EpisodeWork:
    """FLOPs and bytes per episode for these finished episodes (EpisodeResult-like objects with
    `steps` carrying context_tokens and generated_tokens), decoded `batch` rows at a time and
    `tokens_per_forward` tokens per row and forward."""
    if tokens_per_forward < 1:
        raise ValueError("tokens_per_forward is at least 1")
    f = tokens_per_forward
    C, L, V = config.n_embd, config.n_layer, config.vocab_size
    block_weights = L * 12 * C * C                  # qkv 3C², proj C², mlp 8C², per layer
    weight_bytes = (block_weights + V * C) * bytes_per_value
    kv_per_pos = L * 2 * C * bytes_per_value        # K and V, all layers, one position
    flops = bytes_ = decoded = prefilled = 0.0
    for r in results:
        steps = [s for s in r.steps]
        if not steps:
            continue
        spans = []  # (first position, tokens, decoded?) of every forward the episode needed
        spans.append((0, steps[0].context_tokens, False))  # the prompt
        for i, s in enumerate(steps):
            spans.append((s.context_tokens, s.generated_tokens, True))
            if i + 1 < len(steps):
                start = s.context_tokens + s.generated_tokens
                spans.append((start, max(0, steps[i + 1].context_tokens - start), False))
        for start, n, is_decode in spans:
            if n <= 0:
                continue
            attended = n * start + n * (n + 1) / 2  # sum of positions seen by each token
            flops += 2 * block_weights * n + 4 * L * C * attended
            flops += 2 * C * V * (n if is_decode else 1)
            if is_decode:
                decoded += n
                bytes_ += n * weight_bytes / (batch * f) + kv_per_pos * (attended / f + n)
            else:
                prefilled += n
                bytes_ += weight_bytes + kv_per_pos * (start + 2 * n)
    k = max(1, len(results))
    return EpisodeWork(len(results), round(decoded / k, 1), round(prefilled / k, 1),
                       round(flops / k / 1e9, 5), round(bytes_ / k / 1e9, 6), batch,
                       round(f, 3))


def bound(m: MachineLimits, w: EpisodeWork) -> dict:
    """Episodes/s allowed by each roof and by the machine (the slower roof)."""
    compute = m.matmul_gflops / w.gflop if w.gflop else float("inf")
    memory = m.copy_gbps / w.gbytes if w.gbytes else float("inf")
    return {"compute_bound_eps": round(compute, 1), "memory_bound_eps": round(memory, 1),
            "bound_eps": round(min(compute, memory), 1),
            "limited_by": "compute" if compute <= memory else "memory"}


def report(m: MachineLimits, w: EpisodeWork, engine_eps: float) -> dict:
    b = bound(m, w)
    return {"machine": asdict(m), "work_per_episode": asdict(w), **b,
            "engine_fraction_of_bound": round(engine_eps / b["bound_eps"], 4)}
