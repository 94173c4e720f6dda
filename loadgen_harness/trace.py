"""Agent traces: one JSON line per episode with its steps, tool calls and per-step timings.

The trace sits beside LoadGen's own logs in every run directory (`agent_trace.jsonl`); its
JSON Schema is `reference/schemas/agent_trace.schema.json`. LoadGen times whole
episodes; the trace says where the time went (generation against tools, context and KV-cache
growth per step), and lets the checker re-execute every tool call.
"""
from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema

from reference.rules import SCHEMA_DIR

if TYPE_CHECKING:  # the checker imports this module and must not pull in torch
    from reference.episode import EpisodeResult

SCHEMA_PATH = SCHEMA_DIR / "agent_trace.schema.json"
SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def trace_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def episode_record(seq: int, idx: int, task_id: str, mode: str, result: "EpisodeResult",
                   served_by: dict | None = None) -> dict:
    """served_by: {"replica", "node"} of the Ray replica that ran the episode (absent for
    the local backend, whose traces stay as they were)."""
    constrained = any(s.mask_ms > 0 for s in result.steps)
    rec = {
        "schema_version": SCHEMA_VERSION, "seq": seq, "qsl_idx": idx, "task_id": task_id,
        "mode": mode, "question": result.question, "answer": result.answer,
        "stop_reason": result.stop_reason, "latency_ms": round(result.latency_ms, 3),
        "generated_tokens": result.generated_tokens,
        "steps": [_step(s, constrained) for s in result.steps],
    }
    if served_by is not None:
        rec["replica"], rec["node"] = int(served_by["replica"]), str(served_by["node"])
    return rec


def _step(s, constrained: bool) -> dict:
    out = {"text": s.text, "tool": s.tool, "tool_input": s.tool_input,
           "observation": s.observation, "context_tokens": s.context_tokens,
           "kv_cache_bytes": s.kv_cache_bytes, "generated_tokens": s.generated_tokens,
           "generation_ms": round(s.generation_ms, 3), "tool_ms": round(s.tool_ms, 4)}
    if constrained:  # decoded under a schema (nano-planner): its masks and executor timed
        out["mask_ms"] = min(round(s.mask_ms, 4), out["generation_ms"])
        out["executor_ms"] = min(round(s.executor_ms, 4), out["tool_ms"])
    return out


class TraceWriter:
    """Thread-safe JSON-lines writer (SUT workers complete episodes concurrently)."""

    def __init__(self, path: Path, tasks, mode: str):
        self.f = open(path, "w")
        self.tasks, self.mode = tasks, mode
        self.seq = 0
        self.lock = threading.Lock()

    def write(self, idx: int, result: "EpisodeResult", served_by: dict | None = None) -> None:
        with self.lock:
            rec = episode_record(self.seq, idx, self.tasks[idx].id, self.mode, result, served_by)
            self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.seq += 1

    def close(self) -> None:
        with self.lock:
            self.f.close()
