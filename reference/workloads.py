"""What a workload (benchmark) is, and the registry of them: the one place that tells them apart.

    from reference.workloads import get_workload
    w = get_workload("nano-codegen")
    tasks = w.load_tasks(path)                       # the frozen set (or any task file)
    with w.episodes(max_steps=3) as make_env:        # owns what episodes share (a sandbox pool)
        env = make_env(tasks[0])                     # ReactEnv / CodegenEnv: the driver interface
    w.correct(grader, task, answer)                  # scoring a logged answer (no torch)
    w.reexecute(grader, task, tool, tool_input)      # a logged tool call, run again
    w.report_row(task, result); w.summarize(rows)    # evaluation (reference.evaluate)
    with w.training(config) as data: ...             # trajectories, validation (reference.train)

A workload is a task set + an environment (the agent loop's other half) + a scorer, each a small
callable, as in inspect_ai; around them, what evaluation, training and the checker need to know
of it. `Workload` below is the interface with the defaults a simple workload can keep; the
built-in ones are listed in WORKLOADS. A benchmark in rules.yaml may name its own implementation
(`workload: package.module`, a module with a `WORKLOAD` object, which the harness, evaluation
and the checker pass to `get_workload`), so adding one touches its package, rules.yaml and
rules.md, not this file (tests/toy_workload.py is one). The registry imports no workload: the
suite's own are reference/react/workload.py, reference/codegen/workload.py and
reference/planner/workload.py, each named in rules.yaml.

Nothing here imports torch: the checker grades through this module.
"""
from __future__ import annotations

import importlib
import statistics
import time
from pathlib import Path
from typing import Any

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


class UnknownWorkload(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class TranscriptEnv:
    """The part of the driver interface (reference.episode) every environment here shares: its
    `result` (an EpisodeResult) holds the context as `transcript`, and the episode is done once
    a stop reason is set. Torch-free, so a workload module the checker imports can use it."""

    result: Any

    @property
    def done(self) -> bool:
        return self.result.stop_reason != "running"

    def prompt(self) -> str:
        return self.result.transcript

    def observed(self, rec, t0: float):
        """Close a tool step whose observation is set (its environment work began at
        perf_counter t0): time it, append the injection, end the episode at max_steps."""
        rec.tool_ms = (time.perf_counter() - t0) * 1e3
        self.result.transcript += self.injection(rec)
        if len(self.result.steps) >= self.max_steps:
            self.result.stop_reason = "max_steps"
        return rec


def answer_from_tools(episode: dict, expected: str, need: int, who: str,
                      what: str) -> dict | None:
    """Q407 for an exact-match workload whose answers come from tool calls: None when the
    episode's answer is not the expected one, or when it made at least `need` tool calls and
    its answer is one of their observations; else the finding's fields. `who` makes the calls
    ("agent", "executor"); `what` names their observations ("observations", "results")."""
    if episode["answer"] != expected:
        return None
    calls = [s for s in episode["steps"] if s["tool"] is not None]
    if len(calls) >= need and episode["answer"] in {s["observation"] for s in calls}:
        return None
    return {"message": "a correct answer that no tool call of the episode produced",
            "expected": f">= {need} tool calls, the answer among their {what}",
            "found": f"{len(calls)} tool calls",
            "hint": f"answers come from the {who}'s tool calls, never from the data set"}


class Workload:
    """The interface. Required: `name`, `answer`, `load_tasks`, `episodes`, `correct`; the rest
    has a default that suits a workload whose episodes end with an exact-match answer."""
    name: str
    answer: str = "final answer"   # what the response payload is: "final answer" | "program"
    # a module with report_row(task, result), summarize(rows), print_report(summary) for
    # evaluation reports; None: the exact-match defaults below
    report: str | None = None

    # --- the benchmark: tasks, episodes, scoring ------------------------------------------
    def load_tasks(self, path: Path | None = None) -> list:
        raise NotImplementedError

    def question(self, task) -> str:
        return task.question

    def episodes(self, max_steps: int, verifier_workers: int = 2,
                 max_step_tokens: int | None = None, sandbox: dict | None = None):
        """A context manager giving `make_env(task)`; it owns what the episodes share. The
        bounds are rules.yaml's (None: the environment's own default)."""
        raise NotImplementedError

    def correct(self, grader, task, answer: str | None) -> bool:
        raise NotImplementedError

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        """(the fresh observation of a logged tool call, or None when it cannot be re-run; a
        note)."""
        return None, f"({self.name} has no tools to re-run)"

    @property
    def default_checkpoint(self) -> Path:
        return CHECKPOINT_DIR / self.name / "model.pt"

    # --- evaluation (reference.evaluate) ----------------------------------------------------
    def report_row(self, task, result) -> dict:
        """One episode as a row of the evaluation report (`correct` and `answer` keys)."""
        if self.report:
            return importlib.import_module(self.report).report_row(task, result)
        return {"id": task.id, "question": self.question(task), "expected": task.answer,
                "answer": result.answer, "correct": result.answer == task.answer,
                "stop_reason": result.stop_reason, "generated_tokens": result.generated_tokens,
                "latency_ms": round(result.latency_ms, 3)}

    def summarize(self, rows: list[dict]) -> dict:
        if self.report:
            return importlib.import_module(self.report).summarize(rows)
        n = max(1, len(rows))
        return {"n_tasks": len(rows), "accuracy": round(sum(r["correct"] for r in rows) / n, 4),
                "mean_generated_tokens": round(statistics.fmean(
                    [r["generated_tokens"] for r in rows]), 4) if rows else 0.0}

    def print_report(self, summary: dict) -> None:
        if self.report:
            return importlib.import_module(self.report).print_report(summary)
        for k, v in summary.items():
            print(f"{k}: {v}")

    # --- the checker (compliance/) -------------------------------------------------------------
    def step_problem(self, step: dict) -> str | None:
        """Why a logged step disagrees with itself (its tool call is not the one its text
        writes), or None."""
        return None

    def answer_problem(self, episode: dict) -> str | None:
        """Why a logged episode's answer is not the one its text writes, or None."""
        return None

    def payload_problem(self, episode: dict) -> tuple[str, str | None] | None:
        """(why, what was expected) when a logged episode's payload (its answer in the
        accuracy log) is not what its steps make it; None when it is."""
        return None

    def same_observation(self, logged: str | None, fresh: str | None) -> bool:
        """Whether a logged observation and a replayed one agree."""
        return logged == fresh

    def uncomputed_answer(self, grader, task, episode: dict) -> dict | None:
        """Q407: for a correct logged episode whose answer the agent loop did not compute, the
        finding's fields (message, expected/found, hint); None when it was computed."""
        return None

    def secondary_row(self, task, steps: list[dict]) -> dict:
        """Per-episode figures behind the benchmark's further quality bounds (rules.yaml
        `quality.bounds`), from a logged episode's steps; {} for a workload without any."""
        return {}

    def secondary_metrics(self, rows: list[dict]) -> dict:
        """The bounded quality figures over a set of episodes' `secondary_row`s."""
        return {}

    def seed_verdicts(self, scored_sets) -> None:
        """Prime the grader's caches with the reference's known verdicts ((task file, reference
        results file) per scored set); nothing for a workload whose grading is cheap."""

    # --- training (reference.train) ---------------------------------------------------------
    def training(self, config):
        """A context manager giving the workload's training data (`validation_tasks(n)`,
        `stream(seed, exclude)`, `solved(model, task)`, `eval_prompts()`); `config` is a
        reference.train.TrainConfig."""
        raise NotImplementedError(f"{self.name} has no training recipe")

    def check_train_options(self, config) -> str | None:
        """Why these training options do not apply to this workload, or None."""
        return None

    def parse_mix(self, spec: str) -> dict:
        """`--mix` ('name=weight,...') as template weights; ValueError when it does not apply."""
        raise ValueError(f"--mix does not apply to {self.name}")


# The workloads found so far, by name: each benchmark's package holds its own (rules.yaml
# `workload: <module>`, a module with a WORKLOAD object); this module imports none of them.
WORKLOADS: dict[str, Any] = {}


def get_workload(name: str, module: str | None = None) -> Workload:
    """The workload of a benchmark name (`module`: where rules.yaml says a workload that is not
    built in lives); an unknown name is an error listing the known ones."""
    w = WORKLOADS.get(name)
    if w is None and module is None:  # each benchmark of the suite's rules.yaml names its module
        module = _rules_module(name)
    if w is None and module:
        w = importlib.import_module(module).WORKLOAD
        if w.name != name:
            raise UnknownWorkload(f"{module}.WORKLOAD is named {w.name!r}, not {name!r}")
        WORKLOADS[name] = w
    if w is None:
        rules_names = _rules_names()  # rules.yaml's order, then any registered elsewhere
        known = rules_names + [b for b in WORKLOADS if b not in rules_names]
        raise UnknownWorkload(f"unknown benchmark {name!r}; known: {', '.join(known)}")
    return w


def _suite_benchmarks() -> dict:
    from reference.rules import RulesError, load_rules
    try:
        return load_rules().benchmarks
    except (RulesError, OSError):
        return {}


def _rules_module(name: str) -> str | None:
    bench = _suite_benchmarks().get(name)
    return bench.workload if bench is not None else None


def _rules_names() -> list[str]:
    return list(_suite_benchmarks())


def register(workload) -> None:
    """Add a workload object (its `name` is its key); for workloads outside rules.yaml."""
    WORKLOADS[workload.name] = workload
