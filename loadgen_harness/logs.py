"""Reading LoadGen's outputs: `mlperf_log_detail.txt` keys and `mlperf_log_accuracy.json`.

The summary text is irregular (labels differ per scenario, numbers in scientific notation), so
results come from the detail log's `:::MLLOG {json}` lines, keyed by name.
"""
from __future__ import annotations

import json
from pathlib import Path


def read_detail(path: Path) -> dict:
    """Map of key -> value from mlperf_log_detail.txt (the last value wins for repeated keys),
    plus `__errors__` and `__warnings__`: the messages of error / warning lines."""
    out: dict = {"__errors__": [], "__warnings__": []}
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            rec = json.loads(line[len(":::MLLOG "):])
        except json.JSONDecodeError:
            continue
        key = rec.get("key")
        out[key] = rec.get("value")
        meta = rec.get("metadata") or {}
        if key == "error" or meta.get("is_error"):
            out["__errors__"].append(str(rec.get("value")))
        if key == "warning" or meta.get("is_warning"):
            out["__warnings__"].append(str(rec.get("value")))
    return out


def read_accuracy_log(path: Path) -> list[dict]:
    """Entries of mlperf_log_accuracy.json with `answer` decoded from the hex payload."""
    entries = json.loads(Path(path).read_text())
    for e in entries:
        e["answer"] = bytes.fromhex(e["data"]).decode("utf-8", errors="replace")
    return entries


def accuracy_from_log(path: Path, tasks, benchmark: str, expected_count: int | None = None,
                      grader=None,
                      metric: str = "exact_match") -> dict:
    """The benchmark's quality recomputed from the accuracy log against the evaluation set:
    exact match (nano-react) or pass within the attempt bound (nano-codegen: the logged last
    program, re-run by the verifier). Keys: `metric` (the rules.yaml name), correct, n_expected, ...

    The denominator is the number of samples the run had to cover (all tasks unless
    expected_count says fewer): a missing sample counts as wrong, and only the first answer
    logged for a sample counts."""
    from reference.grading import Grader
    entries = read_accuracy_log(path)
    by_idx: dict[int, list[str]] = {}
    for e in entries:
        by_idx.setdefault(e["qsl_idx"], []).append(e["answer"])
    n_expected = expected_count or len(tasks)
    in_range = {i: a for i, a in by_idx.items() if isinstance(i, int) and 0 <= i < len(tasks)}
    own = grader is None
    grader = grader or Grader()
    try:
        correct = sum(1 for i, answers in in_range.items()
                      if grader.correct(benchmark, tasks[i], answers[0]))
    finally:
        if own:
            grader.close()
    return {metric: round(correct / n_expected, 4), "correct": correct,
            "n_expected": n_expected, "n_logged": len(entries), "n_unique": len(in_range),
            "duplicated": sum(1 for v in by_idx.values() if len(v) > 1),
            "out_of_range": len(by_idx) - len(in_range)}
