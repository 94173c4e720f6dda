"""R801: replay. The closed division is greedy decoding of a fixed checkpoint with fixed tools,
so any episode of its traces can be re-run here, with the reference checkpoint, and must come
out the same: every step's text, token counts, tool calls and observations, the answer and the
stop reason. What a submission could forge consistently everywhere (a trace rebuilt from the
data set's answers, another model's episodes under the reference's SHA-256) fails here.

    python -m compliance check results/closed/alice --replay 22
    python -m compliance check results/closed/alice --replay 22 --replay-seed 123   # again

The seed is the checker's: fresh randomness (`secrets`) for each check, printed in the report
so the same choice can be made again with --replay-seed; a leaderboard draws one seed for the
whole course run. It is never derived from the submission's bytes, so no edit of the
submission can steer which episodes are replayed.

The choice is stratified: N episodes of EVERY run of every closed-division result (the accuracy
run, each further split's accuracy run, the performance run and each audit run), each run with
its own stream of the seed, so fabricating any single run is caught with the probability
rules.md section 9 states: a run of which a fraction f of episodes was fabricated escapes with
probability at most (1 - f)^N when no mismatch is tolerated (hypergeometric: less).
Episodes of one sample are one greedy computation, so each distinct (benchmark, split,
sample) is decoded once, all of a benchmark's in one batch through the engine, and the fresh
episodes are kept for the process (a leaderboard's worker replays a sample once for all
entries). This module imports torch; the checker's default path never imports it.
"""
from __future__ import annotations

import math
import random
import secrets

from compliance.checks import err
from compliance.checks.traces import checked_trace_rows
from compliance.context import Ctx
from reference.workloads import Workload

STEP_FIELDS = ("text", "tool", "tool_input", "generated_tokens", "context_tokens")
_FRESH: dict[tuple, object] = {}   # (benchmark, split, qsl_idx) -> fresh episode (a pure function)


def fresh_seed() -> int:
    """A replay seed from the checker's own randomness (never from the submission)."""
    return secrets.randbits(63)


def allowed_mismatches(ctx: Ctx, n: int) -> int:
    """Replayed episodes of one run that may differ (another device's arithmetic can flip a
    rare greedy choice): floor(checker.replay_max_mismatch_fraction x n)."""
    return math.floor(float(ctx.rules.checker["replay_max_mismatch_fraction"]) * n)


def catch_probability(f: float, n: int, allowed: int = 0) -> float:
    """P(a run with a fraction f of fabricated episodes shows more than `allowed` mismatches
    among n replayed ones), binomial (draws with replacement: a lower bound)."""
    return 1 - sum(math.comb(n, k) * f ** k * (1 - f) ** (n - k) for k in range(allowed + 1))


def _strata(ctx: Ctx):
    """(benchmark, split or '', trace path) of every run of every closed-division result."""
    for r in ctx.results:
        m = ctx.measurements(r) or {}
        if m.get("division") != "closed":
            continue
        bench = ctx.rules.benchmark(r.benchmark)
        for base, _ in r.runs:
            yield r.benchmark, "", f"{base}/agent_trace.jsonl"
        for name in sorted(getattr(bench, "splits", None) or {}):
            yield r.benchmark, name, f"{r.acc}/{name}/agent_trace.jsonl"


def choose(ctx: Ctx, n: int, seed: int) -> list[tuple[str, str, str, list]]:
    """[(benchmark, split, trace, [(line, record)])]: up to n well-formed episodes of every run,
    each run drawn with its own stream of `seed` (random.Random of a string is deterministic)."""
    out = []
    for bench, split, rel in _strata(ctx):
        pool = [(line, rec) for line, rec, problem in checked_trace_rows(ctx, rel) if not problem]
        if pool:
            rng = random.Random(f"{seed}/{rel}")
            out.append((bench, split, rel, rng.sample(pool, min(n, len(pool)))))
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


def _tasks(ctx: Ctx, bench: str, split: str):
    if not split:
        return ctx.tasks(bench)
    return ctx.split_tasks(bench, split)


def _run_fresh(ctx: Ctx, bench_name: str, wanted: list[tuple[str, int]]) -> None:
    """Decode every (split, qsl_idx) not yet in _FRESH, in one engine batch."""
    todo = [(s, i) for s, i in dict.fromkeys(wanted) if (bench_name, s, i) not in _FRESH]
    if not todo:
        return
    import torch

    from loadgen_harness.sut import EpisodeFactory
    from reference.checkpoint import load_model
    from reference.engine import Engine
    torch.set_num_threads(1)
    model = load_model(ctx.rules.benchmark(bench_name).reference_checkpoint)
    factory = EpisodeFactory(ctx.rules, bench_name, verifier_workers=1)
    try:
        with torch.no_grad():
            fresh = Engine(model, factory, max_batch=min(64, len(todo))).run_all(
                [_tasks(ctx, bench_name, s)[i] for s, i in todo])
    finally:
        factory.close()
    for key, f in zip(todo, fresh):
        _FRESH[(bench_name, *key)] = f


def replay(ctx: Ctx, n: int, seed: int):
    """R801: N episodes of every run (accuracy, each split, performance, each audit) of every
    closed-division result, chosen by the checker's seed, replayed with the reference
    checkpoint (greedy), come out exactly as logged: every step's text, generated and context
    tokens, tool call and observation, the answer and the stop reason. At most
    floor(checker.replay_max_mismatch_fraction x N) of one run's replayed episodes may differ."""
    picks = choose(ctx, n, seed)
    by_bench: dict[str, list] = {}
    for bench, split, rel, chosen in picks:
        tasks = _tasks(ctx, bench, split)
        by_bench.setdefault(bench, []).extend(
            (split, rec["qsl_idx"]) for _, rec in chosen if 0 <= rec["qsl_idx"] < len(tasks))
    for bench, wanted in by_bench.items():
        _run_fresh(ctx, bench, wanted)
    for bench, split, rel, chosen in picks:
        tasks = _tasks(ctx, bench, split)
        workload = ctx.workload(bench)
        diffs = []
        for line, rec in chosen:
            i = rec["qsl_idx"]
            d = _difference(workload, rec, _FRESH[(bench, split, i)]) if 0 <= i < len(tasks) \
                else "the sample index is out of range"
            if d:
                diffs.append((line, d))
        allowed = allowed_mismatches(ctx, len(chosen))
        if len(diffs) > allowed:
            line, d = diffs[0]
            yield err("R801", rel, f"{len(diffs)} of {len(chosen)} replayed episodes of this "
                      "run differ from the trace", location=f"line {line}", found=d,
                      expected=f"<= {allowed} differ", hint=f"replay seed {seed} (check "
                      f"--replay {n} --replay-seed {seed} repeats it); closed-division episodes "
                      "are greedy decoding of the reference checkpoint")
