"""The fast structural trace check agrees with the trace's JSON Schema (and is stricter), and
checking the reference submission stays fast."""
import copy
import json
from pathlib import Path

import pytest

from compliance.tracecheck import record_problem
from loadgen_harness.trace import trace_validator

ROOT = Path(__file__).resolve().parents[2]
TRACES = sorted((ROOT / "tests/fixtures/smoke_submission").rglob("agent_trace.jsonl"))


def _some_records(n=40):
    out = []
    for path in TRACES:
        out += [json.loads(line) for line in path.read_text().splitlines()[:n // len(TRACES) + 1]]
    return out


def test_every_real_record_passes_both():
    v = trace_validator()
    for rec in _some_records():
        assert record_problem(rec) is None and v.is_valid(rec)


MUTATIONS = [
    lambda r: r.pop("steps"), lambda r: r.update(steps=[]), lambda r: r.update(steps={}),
    lambda r: r.update(stop_reason="gave_up"), lambda r: r.update(mode="Accuracy"),
    lambda r: r.update(latency_ms=-1), lambda r: r.update(latency_ms="1"),
    lambda r: r.update(qsl_idx="2"), lambda r: r.update(qsl_idx=True),
    lambda r: r.update(seq=-1), lambda r: r.update(schema_version=2),
    lambda r: r.update(schema_version=True), lambda r: r.update(extra=1),
    lambda r: r.update(task_id=""), lambda r: r.update(question=None),
    lambda r: r.update(answer=5), lambda r: r.update(generated_tokens=1.5),
    lambda r: r["steps"][0].update(generation_ms="fast"), lambda r: r["steps"][0].pop("tool_ms"),
    lambda r: r["steps"][0].update(kv_cache_bytes=-5), lambda r: r["steps"][0].update(x=1),
    lambda r: r["steps"][0].update(tool=3), lambda r: r["steps"][0].update(text=None),
    lambda r: r["steps"][0].update(context_tokens=2.5), lambda r: r["steps"].append(7),
    # a constrained step (nano-planner) times both its masks and its executor, never one alone
    lambda r: r["steps"][0].update(mask_ms=0.1),
    lambda r: [s.update(mask_ms=-1.0, executor_ms=0.0) for s in r["steps"]],
    lambda r: [s.update(mask_ms=0.1, executor_ms="0") for s in r["steps"]],
]


def test_a_constrained_record_passes_both():
    rec = copy.deepcopy(_some_records(1)[0])
    for s in rec["steps"]:
        s.update(mask_ms=0.25, executor_ms=0.0)
    assert record_problem(rec) is None and trace_validator().is_valid(rec)


@pytest.mark.parametrize("mutate", MUTATIONS)
def test_a_record_the_schema_refuses_is_refused(mutate):
    rec = copy.deepcopy(_some_records(1)[0])
    mutate(rec)
    assert list(trace_validator().iter_errors(rec))
    assert record_problem(rec) is not None


@pytest.mark.parametrize("value", [1e13, 3.0])
def test_stricter_than_the_schema_on_numbers(value):
    rec = copy.deepcopy(_some_records(1)[0])
    rec["generated_tokens"] = value      # 3.0 passes the schema's "integer"; not here
    assert record_problem(rec) is not None


def _line(rec) -> str:
    return json.dumps(rec, separators=(",", ":"))


def test_a_whole_trace_parses_in_one_call_exactly_as_line_by_line():
    from compliance.tracecheck import parse_trace
    recs = _some_records(6)
    lines = [_line(r) for r in recs] + ["", "  "]
    assert parse_trace(lines) == [(i, r) for i, r in enumerate(recs, 1)]


def test_records_split_across_lines_never_pass_the_one_call_parse():
    from compliance.tracecheck import parse_trace
    rec = _line(_some_records(1)[0])
    cut = rec.index('"steps":[') + len('"steps":[')
    step = rec[cut:-2]  # the steps' objects, without the closing `]}`
    # line 1 opens the steps, line 2 closes them: as one text it is a valid record, and
    # line 3 holds two records to keep the count; line by line, lines 1 to 3 are not records
    lines = [rec[:cut] + step, step + "]}", rec + "," + rec]
    assert parse_trace(lines) is None


def test_a_duplicate_key_fails_the_one_call_parse():
    from compliance.tracecheck import parse_trace
    rec = _line(_some_records(1)[0])
    assert parse_trace([rec, '{"seq":5,' + rec[1:]]) is None
    assert parse_trace([rec, rec.replace('"seq":', '"seq" :')]) is None


def _bytes_variants(recs) -> dict[str, bytes]:
    text = "\n".join(_line(r) for r in recs)
    first = _line(recs[0])
    return {
        "plain": (text + "\n").encode(), "no final newline": text.encode(),
        "a blank line": (text + "\n\n" + first + "\n").encode(),
        "a spaces-only line": (text + "\n  \n").encode(),
        "CRLF": (text.replace("\n", "\r\n") + "\r\n").encode(),
        "a duplicate key": (text + "\n" + '{"seq":5,' + first[1:] + "\n").encode(),
        "a spaced colon": (text + "\n" + first.replace('"seq":', '"seq"\t:') + "\n").encode(),
        "NaN": (text + "\n" + first.replace('"latency_ms":', '"latency_ms":NaN,"x":')).encode(),
        "an overflowing float": text.replace('"latency_ms":', '"latency_ms":1e400,"x":',
                                             1).encode(),
        "a big integer": text.replace('"seq":', '"seq":123456789012345678901234567890,"x":',
                                      1).encode(),
        "a lone surrogate": text.replace('"question":"', '"question":"\\ud800', 1).encode(),
        "not UTF-8": text.encode() + b"\n\xff\n",
        "a byte-order mark": b"\xef\xbb\xbf" + text.encode(),
        "empty": b"", "a newline": b"\n",
        "a record over two lines": text.replace(',"steps":', ',\n"steps":', 1).encode(),
    }


@pytest.mark.parametrize("name", list(_bytes_variants(_some_records(3))))
def test_the_bytes_parse_never_decides_otherwise_than_the_line_parse(name):
    from compliance.tracecheck import parse_trace, parse_trace_bytes
    from loadgen_harness.untrusted.tree import _lines
    data = _bytes_variants(_some_records(3))[name]
    fast = parse_trace_bytes(data)
    try:
        slow = parse_trace(_lines(data.decode("utf-8")))
    except UnicodeDecodeError:
        slow = None
    assert fast is None or fast == slow
    if name in ("plain", "no final newline"):
        assert fast is not None and fast == slow
