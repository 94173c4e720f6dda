"""Scoring logged answers and re-executing logged tool calls, per benchmark (no torch).

    from reference.grading import Grader, load_tasks
    tasks = load_tasks("nano-codegen", path)
    with Grader() as g:
        g.correct("nano-codegen", tasks[0], "result = sum([1, 2, 3, 4, 5])")   # True
        g.observation("nano-react", task, "lookup", "pi")                     # "3.14159"

`make submission` and the compliance checker both score through this module, so a result is
judged the same way where it is made and where it is checked:
- nano-react: the logged answer must equal the task's answer exactly; a tool call re-executes
  through `reference.tools`.
- nano-codegen: the logged answer is the episode's last program; it passes when the sandboxed
  verifier runs it and `str(result)` equals the task's expected output. An attempt (tool
  `python`) re-executes by verifying its program again: the feedback must be the logged one.

Programs in a submission are untrusted: they run only in the verifier's sandbox, each distinct
(program, expected output) once, under a total budget of sandbox wall time (`budget_s`);
past it `BudgetExceeded` is raised so a hostile submission full of slow programs cannot stall
a checker. Deterministic verdicts are shared across the Graders of one process, so checking a
course's submissions of the same model runs each program once.
"""
from __future__ import annotations

import time
from pathlib import Path

from reference.workloads import get_workload


# Verdicts whose detail depends on which limit fired first (CPU or wall clock, address space
# or a dead child): re-execution must reproduce the kind, not the wording.
_LOOSE_KINDS = ("Timeout", "Memory limit exceeded")


# Verdicts shared by every Grader of this process (a leaderboard checks many submissions of the
# same reference model: their programs repeat). Only deterministic verdicts are kept: a
# timeout or memory verdict depends on the machine's load and is always re-run.
_SHARED: dict[tuple[str, str], object] = {}
_SHARED_MAX = 200_000
_RERUN_KINDS = ("timeout", "memory")


class BudgetExceeded(Exception):
    """The sandbox time allowed for re-verifying a submission's programs is spent."""


def load_tasks(benchmark: str, path: Path):
    """The tasks of a benchmark's frozen set (or any task file of its format)."""
    return get_workload(benchmark).load_tasks(Path(path))


def same_feedback(logged: str | None, fresh: str) -> bool:
    if logged == fresh:
        return True
    label = fresh.split(":", 1)[0]
    return label in _LOOSE_KINDS and isinstance(logged, str) and logged.split(":", 1)[0] == label


class Grader:
    """Scores answers and re-executes tool calls; owns a sandbox pool when codegen needs one."""

    def __init__(self, workers: int = 2, budget_s: float = 120.0, limits: dict | None = None):
        """limits: the sandbox's per-program limits (rules.yaml `sandbox`; None: the
        verifier's defaults, which equal them)."""
        self.workers, self.budget_s, self.limits = workers, budget_s, limits
        self.spent_s = 0.0
        self._verifier = None
        self._verdicts: dict[tuple[str, str], object] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def verify(self, program: str, expected: str):
        """The verifier's verdict on a program (cached; counted against the budget)."""
        key = (program, expected)
        if key not in self._verdicts and key in _SHARED:
            self._verdicts[key] = _SHARED[key]
        if key not in self._verdicts:
            if self.spent_s > self.budget_s:
                raise BudgetExceeded(f"more than {self.budget_s:.0f} s of sandbox time spent "
                                     "re-verifying programs")
            if self._verifier is None:
                from reference.codegen.sandbox import Verifier
                self._verifier = Verifier(workers=self.workers, limits=self.limits)
            t0 = time.perf_counter()
            verdict = self._verifier.verify(program, expected)
            self.spent_s += time.perf_counter() - t0
            self._verdicts[key] = verdict
            if verdict.kind not in _RERUN_KINDS and len(_SHARED) < _SHARED_MAX:
                _SHARED[key] = verdict
        return self._verdicts[key]

    def correct(self, benchmark: str, task, answer: str | None) -> bool:
        return get_workload(benchmark).correct(self, task, answer)

    def observation_matches(self, benchmark: str, task, tool: str, tool_input: str,
                            logged: str | None) -> tuple[bool, str]:
        """(whether the logged observation is what re-execution gives, the fresh one)."""
        fresh, note = get_workload(benchmark).reexecute(self, task, tool, tool_input)
        if fresh is None:
            return False, note
        return same_feedback(logged, fresh), fresh


def bounded_quality(benchmark: str, bounds: dict, tasks, steps_by_idx: dict,
                    reference_results: Path, n_all: int) -> dict:
    """A benchmark's further quality figures (rules.yaml `quality.bounds`) recomputed from the
    accuracy run's logged episodes (`steps_by_idx`: sample index -> its trace steps), each
    against its bound: {name: {"value", "max" or "min", "ok"}}. A run that scored a subset of
    the `n_all` samples (smoke) is held to the looser of the bound and the reference
    checkpoint's own figure on the same samples (its per-sample rows in reference_results),
    as the main quality target is. `make submission` and the checker both call this."""
    import json
    w = get_workload(benchmark)
    got = w.secondary_metrics([w.secondary_row(tasks[i], steps)
                               for i, steps in sorted(steps_by_idx.items())])
    ref = {}
    if 0 < len(steps_by_idx) < n_all:
        rows = {}
        for line in Path(reference_results).read_text().splitlines():
            row = json.loads(line) if line.strip() else None
            if row and row.get("qsl_idx") in steps_by_idx:
                rows[row["qsl_idx"]] = row
        if len(rows) == len(steps_by_idx):
            ref = w.secondary_metrics(list(rows.values()))
    out = {}
    for name, (kind, limit) in bounds.items():
        if name in ref:
            limit = max(limit, ref[name]) if kind == "max" else min(limit, ref[name])
        value = round(got.get(name, float("nan")), 4)
        ok = value <= limit if kind == "max" else value >= limit  # NaN (no figure) fails
        out[name] = {"value": value, kind: round(limit, 4), "ok": ok}
    return out

