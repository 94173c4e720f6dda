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
rules.md, not this file (tests/toy_workload.py is one).

Nothing here imports torch: the checker grades through this module.
"""
from __future__ import annotations

import importlib
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

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


@dataclass(frozen=True)
class ReactWorkload(Workload):
    """nano-react: questions answered through the four seed tools; exact-match answers."""
    name: str = "nano-react"
    answer: str = "final answer"
    report: str = "reference.react.report"

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.react.tasks import EVAL_PATH, load_eval_set
        return load_eval_set(Path(path) if path else EVAL_PATH)

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2,
                 max_step_tokens: int | None = None, sandbox: dict | None = None
                 ) -> Iterator[Callable]:
        from reference.react.agent import MAX_STEP_TOKENS, ReactEnv
        tokens = max_step_tokens or MAX_STEP_TOKENS
        yield lambda task: ReactEnv(task.question, max_steps, tokens)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer == task.answer

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        from reference.tools import run_tool
        return run_tool(tool, tool_input), ""

    def step_problem(self, step: dict) -> str | None:
        from reference.react.format import parse_step_cached
        parsed = parse_step_cached(step["text"])
        if parsed.kind == "action" and \
                (step["tool"], step["tool_input"]) != (parsed.tool, parsed.tool_input):
            return "the tool call is not the one the step's text wrote"
        if parsed.kind != "action" and step["tool"] is not None:
            return "a tool call in a step whose text calls no tool"
        return None

    def answer_problem(self, episode: dict) -> str | None:
        from reference.react.format import parse_step_cached
        if episode["stop_reason"] == "final_answer" and episode["steps"] and \
                parse_step_cached(episode["steps"][-1]["text"]).answer != episode["answer"]:
            return "the answer is not the one the last step's text writes"
        return None

    def uncomputed_answer(self, grader, task, episode: dict) -> dict | None:
        """The episode made at least the task's number of tool calls and its final answer is
        one of its tools' observations."""
        if episode["answer"] != task.answer:
            return None
        calls = [s for s in episode["steps"] if s["tool"] is not None]
        need = getattr(task, "n_tool_calls", 1) or 1
        if len(calls) >= need and episode["answer"] in {s["observation"] for s in calls}:
            return None
        return {"message": "a correct answer that no tool call of the episode produced",
                "expected": f">= {need} tool calls, the answer among their observations",
                "found": f"{len(calls)} tool calls",
                "hint": "answers come from the agent's tool calls, never from the data set"}

    def training(self, config):
        from reference.react.training import react_training
        return react_training(config)

    def parse_mix(self, spec: str) -> dict:
        from reference.react.tasks import parse_mix
        return parse_mix(spec)

    def check_train_options(self, config) -> str | None:
        if config.variety:
            return "--variety applies to nano-codegen only (nano-react: --broad)"
        if config.miscopy:
            return "--miscopy applies to nano-codegen only"
        if config.replay:
            return "--replay replays nano-react's data into another workload's training"
        return None


@dataclass(frozen=True)
class CodegenWorkload(Workload):
    """nano-codegen: programs verified in the sandbox, retried with feedback; the payload is the
    last program, correct when the verifier runs it to the expected output."""
    name: str = "nano-codegen"
    answer: str = "program"
    report: str = "reference.codegen.report"
    tool: str = "python"        # the `tool` of an attempt's step in traces

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.codegen.tasks import EVAL_PATH, load_eval_set
        return load_eval_set(Path(path) if path else EVAL_PATH)

    def question(self, task) -> str:
        return task.prompt

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2,
                 max_step_tokens: int | None = None, sandbox: dict | None = None
                 ) -> Iterator[Callable]:
        from reference.codegen.agent import MAX_STEP_TOKENS, CodegenEnv
        from reference.codegen.sandbox import Verifier
        tokens = max_step_tokens or MAX_STEP_TOKENS
        with Verifier(workers=verifier_workers, limits=sandbox) as verifier:
            yield lambda task: CodegenEnv(task, verifier, max_steps, tokens)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer is not None and grader.verify(answer, task.answer).ok

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        if tool != self.tool:
            return None, f"(no tool {tool!r} in {self.name}; attempts use {self.tool!r})"
        return grader.verify(tool_input, task.answer).feedback, ""

    def step_problem(self, step: dict) -> str | None:
        from reference.codegen.format import parse_program
        if step["tool"] is not None and step["tool_input"] != parse_program(step["text"]):
            return "the program run is not the one the step's text wrote"
        return None

    def payload_problem(self, episode: dict) -> tuple[str, str | None] | None:
        """The payload is the episode's last attempt."""
        last = next((s["tool_input"] for s in reversed(episode["steps"])
                     if s["tool"] is not None), None)
        if episode["answer"] != last:
            return "the logged program is not the episode's last attempt", last
        return None

    def same_observation(self, logged: str | None, fresh: str | None) -> bool:
        from reference.grading import same_feedback
        return same_feedback(logged, fresh or "") if logged is not None else logged == fresh

    def uncomputed_answer(self, grader, task, episode: dict) -> dict | None:
        """The passing program computes (one that only assigns literals states the expected
        output instead of computing it)."""
        from reference.codegen.format import program_computes
        answer = episode["answer"]
        if answer is None or program_computes(answer) or not self.correct(grader, task, answer):
            return None
        return {"message": "the program assigns the expected output as a literal",
                "found": answer[:200], "hint": "a program must compute its result"}

    def seed_verdicts(self, scored_sets) -> None:
        """The reference checkpoint's passing programs (committed beside each evaluation set
        with their verdicts): a submitted program identical to one of them, for the same task,
        has the same deterministic verdict, so the sandbox need not run it again."""
        import json

        from reference.codegen.sandbox import VerifyResult
        from reference.grading import _SHARED
        for task_file, results_file in scored_sets:
            tasks = self.load_tasks(task_file)
            for line in Path(results_file).read_text().splitlines():
                row = json.loads(line) if line.strip() else None
                if row and row.get("correct") is True and 0 <= row["qsl_idx"] < len(tasks):
                    expected = tasks[row["qsl_idx"]].answer
                    _SHARED.setdefault((row["answer"], expected),
                                       VerifyResult("ok", output=expected))

    def training(self, config):
        from reference.codegen.training import codegen_training
        return codegen_training(config)

    def check_train_options(self, config) -> str | None:
        if config.mix:
            return "--mix applies to nano-react and nano-planner"
        if config.broad:
            return "--broad applies to nano-react only (nano-codegen: --variety)"
        return None


# The built-in workloads. Others come from rules.yaml (`workload: <module>`, see get_workload).
WORKLOADS: dict[str, Any] = {"nano-react": ReactWorkload(), "nano-codegen": CodegenWorkload()}


def get_workload(name: str, module: str | None = None) -> Workload:
    """The workload of a benchmark name (`module`: where rules.yaml says a workload that is not
    built in lives); an unknown name is an error listing the known ones."""
    w = WORKLOADS.get(name)
    if w is None and module is None:  # a benchmark of the suite's rules.yaml names its module
        module = _rules_module(name)
    if w is None and module:
        w = importlib.import_module(module).WORKLOAD
        if w.name != name:
            raise UnknownWorkload(f"{module}.WORKLOAD is named {w.name!r}, not {name!r}")
        WORKLOADS[name] = w
    if w is None:
        known = list(WORKLOADS) + [b for b in _rules_names() if b not in WORKLOADS]
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
