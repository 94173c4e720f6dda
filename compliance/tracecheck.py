"""A fast structural check of one agent-trace record, equivalent to (and stricter than) its
JSON Schema (reference/schemas/agent_trace.schema.json, which stays the documentation).

jsonschema took 2.4 s for the reference submission's 16.5 k records; these plain checks take
a few hundredths of a second. tests/compliance/test_tracecheck.py keeps the two in agreement.
Stricter than the schema: integers must be JSON integers (not 3.0), every number finite and
below MAX_NUMBER, every string shorter than MAX_TEXT.
"""
from __future__ import annotations

import json
import re

import orjson

from reference.rules import SCHEMA_DIR

SCHEMA_PATH = SCHEMA_DIR / "agent_trace.schema.json"
_SCHEMA = json.loads(SCHEMA_PATH.read_text())
MAX_NUMBER = 1e12     # ms, tokens, bytes: nothing honest comes near it
MAX_TEXT = 1 << 16    # characters of one string field
RECORD_KEYS = frozenset(("schema_version", "seq", "qsl_idx", "task_id", "mode", "question",
                         "answer", "stop_reason", "latency_ms", "generated_tokens", "steps"))
STEP_KEYS = frozenset(("text", "tool", "tool_input", "observation", "context_tokens",
                       "kv_cache_bytes", "generated_tokens", "generation_ms", "tool_ms"))
# a record of a Ray backend's run also names the replica and the node that served it
SERVED_RECORD_KEYS = RECORD_KEYS | {"replica", "node"}
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


_MODES, _STOPS, _M = frozenset(MODES), frozenset(STOP_REASONS), MAX_NUMBER


def _step_ok(s, keys) -> bool:
    """record_problem's step checks in one expression (a step with `keys`)."""
    t, a, b, o = s["text"], s["tool"], s["tool_input"], s["observation"]
    c, k, g, gm, tm = (s["context_tokens"], s["kv_cache_bytes"], s["generated_tokens"],
                       s["generation_ms"], s["tool_ms"])
    return (type(t) is str and len(t) <= MAX_TEXT
            and (a is None or type(a) is str and len(a) <= MAX_TEXT)
            and (b is None or type(b) is str and len(b) <= MAX_TEXT)
            and (o is None or type(o) is str and len(o) <= MAX_TEXT)
            and type(c) is int and type(k) is int and type(g) is int
            and 0 <= c <= _M and 0 <= k <= _M and 0 <= g <= _M
            and (type(gm) is float or type(gm) is int) and 0 <= gm <= _M
            and (type(tm) is float or type(tm) is int) and 0 <= tm <= _M
            and (keys is STEP_KEYS or _num(s["mask_ms"]) and _num(s["executor_ms"])))


def _served_ok(rec: dict) -> bool:
    """The Ray backend's two extra fields, well formed (record_ok checks the rest)."""
    return rec.keys() == SERVED_RECORD_KEYS and _int(rec["replica"]) \
        and type(rec["node"]) is str and 1 <= len(rec["node"]) <= 128


def record_ok(rec) -> bool:
    """Whether record_problem(rec) is None, an order of magnitude faster (one key-set
    comparison per step, no per-field calls): the reference's 55 k records take 0.2 s, not 2.
    test_tracecheck.py holds the two in agreement."""
    if type(rec) is not dict or rec.keys() != RECORD_KEYS and not _served_ok(rec):
        return False
    v, q, i, g, lat = (rec["schema_version"], rec["seq"], rec["qsl_idx"],
                       rec["generated_tokens"], rec["latency_ms"])
    t, qu, an, mo, st = rec["task_id"], rec["question"], rec["answer"], rec["mode"], \
        rec["stop_reason"]
    steps = rec["steps"]
    if not (v == 1 and type(v) is int and type(q) is int and type(i) is int and type(g) is int
            and 0 <= q <= _M and 0 <= i <= _M and 0 <= g <= _M
            and (type(lat) is float or type(lat) is int) and 0 <= lat <= _M
            and type(t) is str and 1 <= len(t) <= MAX_TEXT
            and type(qu) is str and len(qu) <= MAX_TEXT
            and (an is None or type(an) is str and len(an) <= MAX_TEXT)
            and type(mo) is str and mo in _MODES and type(st) is str and st in _STOPS
            and type(steps) is list and steps and type(steps[0]) is dict):
        return False
    keys = steps[0].keys()
    if keys == STEP_KEYS:
        keys = STEP_KEYS
    elif keys == CONSTRAINED_STEP_KEYS:
        keys = CONSTRAINED_STEP_KEYS
    else:
        return False
    for s in steps:
        if type(s) is not dict or s.keys() != keys or not _step_ok(s, keys):
            return False
    return True


_SPACED_COLON = re.compile(r'"\s+:')  # a key written `"k" :` escapes the quick count
_SPACED_COLON_B = re.compile(rb'"\s+:')


def _records(parsed, numbered_lines, n_colons: int, spaced) -> list[tuple[int, dict]] | None:
    """parse_trace's verdict on one parsed `[[line 1], [line 2], ...]` (see there)."""
    if type(parsed) is not list or len(parsed) != len(numbered_lines):
        return None
    out, n_keys = [], 0
    for i, e in zip(numbered_lines, parsed):
        if type(e) is not list or len(e) != 1 or not record_ok(e[0]):
            return None
        rec = e[0]
        out.append((i, rec))
        n_keys += len(rec) + len(rec["steps"]) * len(rec["steps"][0])
    if n_colons != n_keys or spaced:
        return None
    return out


def parse_trace(lines: list[str]) -> list[tuple[int, dict]] | None:
    """[(line number, record)] when every non-blank line of a trace is a well-formed record
    (record_ok) without a duplicate key, else None (the caller then parses line by line, to
    say which line is wrong and why).

    One JSON parse of the whole trace (keys are shared, one call): each line is wrapped as
    `[line]`, the wrappers joined by `\n,`. Why that is exact: a string cannot span lines (a
    raw newline is refused), so each inserted `],[` is structural; its comma separates two
    arrays, which only the outer list holds when no record holds an array of arrays
    (record_ok: steps are objects of scalars). So when the outer list has one element per
    line and each is `[record]`, element k is line k alone. Duplicate keys: outside a string
    every `":` ends a key (a record's keys are known names, none ending in a backslash), so the
    text's count exceeds the records' key count exactly when some key is given twice."""
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    body = "]\n,[".join([line for _, line in numbered])  # adds no `"` and no `:`
    try:
        parsed = json.loads("[[" + body + "]]")
    except (ValueError, RecursionError):
        return None
    return _records(parsed, [i for i, _ in numbered],
                    body.count('":') - body.count('\\":'), _SPACED_COLON.search(body))


def parse_trace_bytes(data: bytes) -> list[tuple[int, dict]] | None:
    """parse_trace of a trace's raw bytes, for the common shape (records separated by `\n`
    alone, no blank line): the same wrapping made by one replace, parsed by orjson from the
    bytes (it refuses invalid UTF-8, NaN, Infinity and numbers that overflow a double; a big
    integer becomes a float, which record_ok refuses where an integer belongs). Whatever it
    refuses, or any other shape, goes to parse_trace (the standard library's parser), so
    this only ever decides faster, never differently: test_tracecheck.py holds the two equal.
    The reference's 53 MB: 1.4 s -> 0.8 s of CPU."""
    if b"\r" in data or not data:
        return None
    body = data[:-1] if data.endswith(b"\n") else data
    try:
        parsed = orjson.loads(b"[[" + body.replace(b"\n", b"]\n,[") + b"]]")
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return None
    return _records(parsed, range(1, body.count(b"\n") + 2),
                    body.count(b'":') - body.count(b'\\":'), _SPACED_COLON_B.search(body))


def record_problem(rec) -> str | None:
    """None if the record is well formed, else '/pointer: what is wrong'."""
    if record_ok(rec):
        return None
    if type(rec) is not dict:
        return "/: not an object"
    keys = rec.keys()
    if keys == SERVED_RECORD_KEYS:
        if not _int(rec["replica"]):
            return "/replica: not a non-negative integer"
        if not _str(rec["node"], min_len=1) or len(rec["node"]) > 128:
            return "/node: not a string of 1 to 128 characters"
        keys = RECORD_KEYS
    elif keys != RECORD_KEYS:
        missing = sorted(RECORD_KEYS - keys)
        extra = sorted(keys - RECORD_KEYS)
        return f"/: {'missing ' + ', '.join(missing) if missing else ''}" \
               f"{'; ' if missing and extra else ''}" \
               f"{'unknown ' + ', '.join(map(str, extra))[:80] if extra else ''}"
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
