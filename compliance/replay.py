"""R801: replay. The closed division is greedy decoding of a fixed checkpoint with fixed tools,
so any episode of its traces can be re-run here, with the reference checkpoint, and must come
out the same: every step's text, token counts, tool calls and observations, the answer and the
stop reason. What a submission could forge consistently everywhere (a trace rebuilt from the
data set's answers, another model's episodes under the reference's SHA-256) fails here.

    python -m compliance check results/closed/alice --replay 4

The episodes are chosen by a seed derived from the submission's own evidence (the SHA-256 of
its detail logs and traces), so which ones will be replayed cannot be known before submitting.
N episodes per benchmark of the closed division; open-division results are not replayed.
This module imports torch; the checker's default path (no --replay) never imports it.
"""
from __future__ import annotations

import hashlib
import random

from compliance.checks import err
from compliance.checks.traces import trace_records
from compliance.context import Ctx
from reference.workloads import Workload

STEP_FIELDS = ("text", "tool", "tool_input", "generated_tokens", "context_tokens")


def replay_seed(evidence: dict[str, str]) -> int:
    """A seed from the submission's own evidence hashes (path -> SHA-256)."""
    h = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(evidence.items())).encode())
    return int.from_bytes(h.digest()[:8], "big")


def choose(ctx: Ctx, n: int, seed: int) -> dict[str, list[tuple[str, int, dict]]]:
    """Up to n (trace, line, record) per benchmark, drawn from its closed-division traces."""
    rng = random.Random(seed)
    out: dict[str, list] = {}
    for bench in sorted({r.benchmark for r in ctx.results}):
        pool = []
        for r in ctx.results:
            m = ctx.measurements(r) or {}
            if r.benchmark != bench or m.get("division") != "closed":
                continue
            for base, _ in r.runs:
                rel = f"{base}/agent_trace.jsonl"
                pool += [(rel, line, rec) for line, rec in trace_records(ctx, rel)]
        if pool:
            out[bench] = rng.sample(pool, min(n, len(pool)))
    return out


def _difference(workload: Workload, logged: dict, fresh) -> str | None:
    """The first way a logged episode differs from its replay (None if it does not)."""
    if (logged["answer"], logged["stop_reason"]) != (fresh.answer, fresh.stop_reason):
        return f"answer/stop {logged['answer']!r}/{logged['stop_reason']} vs " \
               f"{fresh.answer!r}/{fresh.stop_reason}"
    if logged["generated_tokens"] != fresh.generated_tokens:
        return f"generated tokens {logged['generated_tokens']} vs {fresh.generated_tokens}"
    if len(logged["steps"]) != len(fresh.steps):
        return f"{len(logged['steps'])} steps vs {len(fresh.steps)}"
    for i, (a, b) in enumerate(zip(logged["steps"], fresh.steps)):
        for f in STEP_FIELDS:
            if a[f] != getattr(b, f):
                return f"step {i} {f}: {str(a[f])[:80]!r} vs {str(getattr(b, f))[:80]!r}"
        if not workload.same_observation(a["observation"], b.observation):
            return f"step {i} observation: {str(a['observation'])[:80]!r} vs " \
                   f"{str(b.observation)[:80]!r}"
    return None


def replay(ctx: Ctx, n: int, evidence: dict[str, str]):
    """R801: N episodes per benchmark of the closed division, replayed with the reference
    checkpoint (greedy), come out exactly as logged: every step's text, generated and context
    tokens, tool call and observation, the answer and the stop reason. At most
    checker.replay_max_mismatch_fraction of them may differ (another device's arithmetic can
    flip a rare greedy choice)."""
    picks = choose(ctx, n, replay_seed(evidence))
    if not picks:
        return
    import torch

    from loadgen_harness.sut import EpisodeFactory
    from reference.engine import Engine
    from reference.checkpoint import load_model
    torch.set_num_threads(1)
    limit = ctx.rules.checker["replay_max_mismatch_fraction"]
    for bench_name, chosen in picks.items():
        bench = ctx.rules.benchmark(bench_name)
        tasks = ctx.tasks(bench_name)
        chosen = [(rel, line, rec) for rel, line, rec in chosen if 0 <= rec["qsl_idx"] < len(tasks)]
        if not chosen:
            continue
        model = load_model(bench.reference_checkpoint)
        factory = EpisodeFactory(ctx.rules, bench_name, verifier_workers=1)
        try:
            with torch.no_grad():
                fresh = Engine(model, factory, max_batch=len(chosen)).run_all([tasks[rec["qsl_idx"]] for _, _, rec in chosen])
        finally:
            factory.close()
        diffs = [(rel, line, d) for (rel, line, rec), f in zip(chosen, fresh)
                 if (d := _difference(ctx.workload(bench_name), rec, f))]
        if len(diffs) > limit * len(chosen):
            rel, line, d = diffs[0]
            yield err("R801", rel, f"{len(diffs)} of {len(chosen)} replayed episodes differ from "
                      "the trace", location=f"line {line}", found=d,
                      hint="closed-division episodes are greedy decoding of the reference "
                           "checkpoint; the replay ran it again")
