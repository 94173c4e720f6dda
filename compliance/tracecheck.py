"""A fast structural check of one agent-trace record, equivalent to (and stricter than) its
JSON Schema (reference/schemas/agent_trace.schema.json, which stays the documentation).

jsonschema took 2.4 s for the reference submission's 16.5 k records; these plain checks take
a few hundredths of a second. tests/compliance/test_tracecheck.py keeps the two in agreement.
Stricter than the schema: integers must be JSON integers (not 3.0), every number finite and
below MAX_NUMBER, every string shorter than MAX_TEXT.
"""
from __future__ import annotations

import json
from reference.rules import SCHEMA_DIR

SCHEMA_PATH = SCHEMA_DIR / "agent_trace.schema.json"
_SCHEMA = json.loads(SCHEMA_PATH.read_text())
MAX_NUMBER = 1e12     # ms, tokens, bytes: nothing honest comes near it
MAX_TEXT = 1 << 16    # characters of one string field
RECORD_KEYS = frozenset(("schema_version", "seq", "qsl_idx", "task_id", "mode", "question",
                         "answer", "stop_reason", "latency_ms", "generated_tokens", "steps"))
STEP_KEYS = frozenset(("text", "tool", "tool_input", "observation", "context_tokens",
                       "kv_cache_bytes", "generated_tokens", "generation_ms", "tool_ms"))
# a constrained-decoding step (nano-planner) also times its masks and its executor
CONSTRAINED_STEP_KEYS = STEP_KEYS | {"mask_ms", "executor_ms"}
# the enumerations come from the schema itself, so the two never drift apart
MODES = tuple(_SCHEMA["properties"]["mode"]["enum"])
STOP_REASONS = tuple(_SCHEMA["properties"]["stop_reason"]["enum"])


def _int(v) -> bool:
    return type(v) is int and 0 <= v <= MAX_NUMBER


def _num(v) -> bool:
    return (type(v) is int or type(v) is float) and 0 <= v <= MAX_NUMBER  # NaN fails both


def _str(v, allow_none=False, min_len=0) -> bool:
    if v is None:
        return allow_none
    return type(v) is str and min_len <= len(v) <= MAX_TEXT


def record_problem(rec) -> str | None:
    """None if the record is well formed, else '/pointer: what is wrong'."""
    if type(rec) is not dict:
        return "/: not an object"
    keys = rec.keys()
    if keys != RECORD_KEYS:
        missing = sorted(RECORD_KEYS - keys)
        extra = sorted(keys - RECORD_KEYS)
        return f"/: {'missing ' + ', '.join(missing) if missing else ''}" \
               f"{'; ' if missing and extra else ''}{'unknown ' + ', '.join(map(str, extra))[:80] if extra else ''}"
    if rec["schema_version"] != 1 or type(rec["schema_version"]) is not int:
        return "/schema_version: must be 1"
    for k in ("seq", "qsl_idx", "generated_tokens"):
        if not _int(rec[k]):
            return f"/{k}: not a non-negative integer"
    if not _num(rec["latency_ms"]):
        return "/latency_ms: not a finite non-negative number"
    if not _str(rec["task_id"], min_len=1):
        return "/task_id: not a non-empty string"
    if not _str(rec["question"]):
        return "/question: not a string"
    if not _str(rec["answer"], allow_none=True):
        return "/answer: not a string or null"
    if rec["mode"] not in MODES or type(rec["mode"]) is not str:
        return f"/mode: not one of {', '.join(MODES)}"
    if rec["stop_reason"] not in STOP_REASONS or type(rec["stop_reason"]) is not str:
        return "/stop_reason: not a known stop reason"
    steps = rec["steps"]
    if type(steps) is not list or not steps:
        return "/steps: not a non-empty list"
    keys = None
    for i, s in enumerate(steps):
        if type(s) is not dict or s.keys() not in (STEP_KEYS, CONSTRAINED_STEP_KEYS) or \
                keys not in (None, s.keys()):
            return f"/steps/{i}: not a step object with exactly the step fields (every step " \
                   "of an episode the same ones)"
        keys = s.keys()
        if not _str(s["text"]):
            return f"/steps/{i}/text: not a string"
        for k in ("tool", "tool_input", "observation"):
            if not _str(s[k], allow_none=True):
                return f"/steps/{i}/{k}: not a string or null"
        for k in ("context_tokens", "kv_cache_bytes", "generated_tokens"):
            if not _int(s[k]):
                return f"/steps/{i}/{k}: not a non-negative integer"
        for k in ("generation_ms", "tool_ms", "mask_ms", "executor_ms"):
            if k in s and not _num(s[k]):
                return f"/steps/{i}/{k}: not a finite non-negative number"
    return None
