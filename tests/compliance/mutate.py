"""Apply a fixture's edits to a copy of a valid submission (the negative fixtures' engine)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml


def _set(obj, pointer: list, value, delete=False):
    for key in pointer[:-1]:
        obj = obj[key]
    if delete:
        del obj[pointer[-1]]
    else:
        obj[pointer[-1]] = value


def apply(root: Path, edit: dict) -> None:
    op, path = edit["op"], root / edit.get("path", "")
    if op == "delete":
        os.remove(path)
    elif op == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(edit["content"])
    elif op == "truncate":
        path.write_bytes(path.read_bytes()[: edit["bytes"]])
    elif op in ("json_set", "json_del"):
        doc = json.loads(path.read_text())
        _set(doc, edit["pointer"], edit.get("value"), delete=op == "json_del")
        path.write_text(json.dumps(doc))
    elif op in ("jsonl_set", "jsonl_del_line"):
        lines = path.read_text().splitlines()
        i = edit["line"]
        if op == "jsonl_del_line":
            del lines[i]
        else:
            doc = json.loads(lines[i])
            _set(doc, edit["pointer"], edit["value"])
            lines[i] = json.dumps(doc)
        path.write_text("\n".join(lines) + "\n")
    elif op == "replace":
        text = path.read_text()
        assert edit["old"] in text, f"{edit['old']!r} not in {path}"
        path.write_text(text.replace(edit["old"], edit["new"], edit.get("count", -1)))
    elif op == "mllog_set":  # set the value of one :::MLLOG key in a detail log
        out = []
        for line in path.read_text().splitlines():
            if line.startswith(":::MLLOG "):
                rec = json.loads(line[9:])
                if rec.get("key") == edit["key"]:
                    rec["value"] = edit["value"]
                    line = ":::MLLOG " + json.dumps(rec)
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    elif op == "append_line":
        with open(path, "a") as f:
            f.write(edit["line"] + "\n")
    elif op == "json_dup":  # duplicate element i of a JSON list at its end
        doc = json.loads(path.read_text())
        doc.append(doc[edit["index"]])
        path.write_text(json.dumps(doc))
    elif op == "jsonl_set_all":
        lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        for doc in lines:
            _set(doc, edit["pointer"], edit["value"])
        path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    elif op == "pad_steps":  # give episode `line` extra empty steps (zero time, no tool)
        lines = path.read_text().splitlines()
        doc = json.loads(lines[edit["line"]])
        filler = {**doc["steps"][-1], "tool": None, "tool_input": None, "observation": None,
                  "generation_ms": 0.0, "tool_ms": 0.0}
        doc["steps"] += [filler] * edit["n"]
        lines[edit["line"]] = json.dumps(doc)
        path.write_text("\n".join(lines) + "\n")
    elif op == "wrong_answers":
        wrong_answers(root / edit["result"], edit["n"])
    elif op == "symlink":
        if path.exists():
            os.remove(path)
        os.symlink(edit["target"], path)
    elif op == "mkdir":
        path.mkdir(parents=True)
    else:
        raise ValueError(f"unknown op {op}")


def load_fixture(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def wrong_answers(result: Path, n: int) -> None:
    """Make the first n logged answers of an accuracy run wrong, consistently everywhere
    (accuracy log, accuracy trace, TEST01 samples, accuracy.json, measurements.json): the
    submission of a system that simply answers worse."""
    acc_log = result / "accuracy/mlperf_log_accuracy.json"
    entries = json.loads(acc_log.read_text())
    changed = {}
    for e in entries[:n]:
        changed[e["qsl_idx"]] = "wrong " + bytes.fromhex(e["data"]).decode()
        e["data"] = changed[e["qsl_idx"]].encode().hex().upper()
    acc_log.write_text(json.dumps(entries))
    t01 = result / "audit/TEST01/mlperf_log_accuracy.json"
    doc = json.loads(t01.read_text())
    for e in doc:
        if e["qsl_idx"] in changed:
            e["data"] = changed[e["qsl_idx"]].encode().hex().upper()
    t01.write_text(json.dumps(doc))
    from loadgen_harness.rules import load_rules
    from reference.grading import CODEGEN, Grader, load_tasks
    benchmark = result.parent.name
    bench = load_rules().benchmark(benchmark)
    tasks = load_tasks(benchmark, bench.eval_set)
    trace = result / "accuracy/agent_trace.jsonl"
    recs = [json.loads(l) for l in trace.read_text().splitlines()]
    with Grader() as g:
        for rec in recs:
            if rec["qsl_idx"] in changed:
                rec["answer"] = changed[rec["qsl_idx"]]
                if benchmark == CODEGEN:  # the last attempt is the logged program
                    last = rec["steps"][-1]
                    last["tool_input"] = rec["answer"]
                    last["observation"] = g.verify(rec["answer"], tasks[rec["qsl_idx"]].answer).feedback
        trace.write_text("".join(json.dumps(r) + "\n" for r in recs))
        acc = json.loads((result / "accuracy/accuracy.json").read_text())
        acc["correct"] = sum(1 for e in entries if g.correct(
            benchmark, tasks[e["qsl_idx"]], bytes.fromhex(e["data"]).decode()))
    acc[bench.quality_metric] = round(acc["correct"] / acc["n_expected"], 4)
    acc["passed"] = False
    (result / "accuracy/accuracy.json").write_text(json.dumps(acc))
    m = json.loads((result / "measurements.json").read_text())
    m["accuracy"] = acc
    (result / "measurements.json").write_text(json.dumps(m))
