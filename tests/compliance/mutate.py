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
    elif op == "code_rehash":  # a consistent forger: code.json lists the edited files' hashes
        import hashlib
        doc = json.loads((root / "code/code.json").read_text())
        for name in list(doc["files"]) + edit.get("add", []):
            doc["files"][name] = hashlib.sha256((root / "code" / name).read_bytes()).hexdigest()
        (root / "code/code.json").write_text(json.dumps(doc))
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
        wrong_answers(root / edit["result"], edit["n"], edit.get("how", "wrong"))
    elif op in ("mllog_scale", "mllog_raw"):  # multiply a key's value / replace its line
        out = []
        for line in path.read_text().splitlines():
            if line.startswith(":::MLLOG ") and json.loads(line[9:]).get("key") == edit["key"]:
                if op == "mllog_raw":
                    line = edit["line"]
                else:
                    rec = json.loads(line[9:])
                    rec["value"] = type(rec["value"])(rec["value"] * edit["factor"])
                    line = ":::MLLOG " + json.dumps(rec)
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    elif op == "mllog_scale_times":  # compress or stretch the run's own time stamps
        out = []
        for line in path.read_text().splitlines():
            if line.startswith(":::MLLOG "):
                rec = json.loads(line[9:])
                rec["time_ms"] = rec["time_ms"] * edit["factor"]
                line = ":::MLLOG " + json.dumps(rec)
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    elif op == "json_scale":
        doc = json.loads(path.read_text())
        obj = doc
        for key in edit["pointer"][:-1]:
            obj = obj[key]
        obj[edit["pointer"][-1]] *= edit["factor"]
        path.write_text(json.dumps(doc))
    elif op == "summary_scale":  # scale the number on a labelled line of a summary
        out = []
        for line in path.read_text().splitlines():
            label, sep, value = line.partition(":")
            if sep and label.strip() == edit["label"]:
                line = f"{label}: {float(value) * edit['factor']:g}"
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    elif op == "summary_set":
        out = []
        for line in path.read_text().splitlines():
            label, sep, _ = line.partition(":")
            if sep and label.strip() == edit["label"]:
                line = f"{label}: {edit['value']}"
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    elif op == "conf_set":  # set one key of a user.conf
        out = []
        for line in path.read_text().splitlines():
            if line.split("=")[0].strip().endswith("." + edit["key"]):
                line = f"{line.split('=')[0].strip()} = {edit['value']}"
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    elif op == "json_keep":  # keep the first n elements of a JSON list
        doc = json.loads(path.read_text())
        path.write_text(json.dumps(doc[: edit["n"]]))
    elif op == "jsonl_clone_first":  # every episode a copy of the first, seq renumbered
        lines = path.read_text().splitlines()
        first = json.loads(lines[0])
        path.write_text("".join(json.dumps({**first, "seq": i}) + "\n" for i in range(len(lines))))
    elif op == "copy":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((root / edit["src"]).read_bytes())
    elif op == "react_no_tools":  # every episode answers at once, without a tool call
        recs = [json.loads(l) for l in path.read_text().splitlines()]
        for rec in recs:
            last = rec["steps"][-1]
            text = f"Thought: I know it.\nFinal Answer: {rec['answer']}\n"
            rec["steps"] = [{**last, "text": text, "tool": None, "tool_input": None,
                             "observation": None, "generated_tokens": len(text.encode())}]
            rec["generated_tokens"] = len(text.encode())
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    elif op == "jsonl_scale_steps":  # scale one timing of every step of episode `line`
        lines = path.read_text().splitlines()
        doc = json.loads(lines[edit["line"]])
        for st in doc["steps"]:
            st[edit["key"]] *= edit["factor"]
        lines[edit["line"]] = json.dumps(doc)
        path.write_text("\n".join(lines) + "\n")
    elif op == "jsonl_copy_line":  # episode `dst` replaced by a jittered copy of `src`
        lines = path.read_text().splitlines()
        doc = json.loads(lines[edit["src"]])
        doc["seq"] = json.loads(lines[edit["dst"]])["seq"]
        doc["latency_ms"] = round(doc["latency_ms"] + edit.get("jitter", 0.001), 6)
        lines[edit["dst"]] = json.dumps(doc)
        path.write_text("\n".join(lines) + "\n")
    elif op == "replace_all":  # a text replaced in every file of the submission (dates)
        for f in sorted(root.rglob("*")):
            if f.is_file() and not f.is_symlink() and f.suffix in (".json", ".txt", ".jsonl",
                                                                   ".conf", ".md"):
                text = f.read_text()
                if edit["old"] in text:
                    f.write_text(text.replace(edit["old"], edit["new"]))
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


def _changed(how: str, answer: str, expected: str, task=None) -> str:
    if how == "oracle":      # nano-codegen: the data set's own program copied
        return task.oracle
    if how == "wrong":
        return "wrong " + answer
    if how == "equivalent":  # nano-codegen: another program computing the same
        return answer + "\nresult = result"
    if how == "literal":     # nano-codegen: the expected output typed in
        import ast
        try:
            ast.literal_eval(expected)
            return f"result = {expected}"
        except (ValueError, SyntaxError):
            return f"result = {expected!r}"
    raise ValueError(how)


def wrong_answers(result: Path, n: int, how: str = "wrong") -> None:
    """Change the first n logged answers of an accuracy run, consistently everywhere
    (accuracy log, every trace of the result, TEST01 samples, accuracy.json,
    measurements.json). how: 'wrong' (a system that simply answers worse), 'equivalent'
    (nano-codegen: other programs that compute the same), 'literal' (nano-codegen: programs
    that assign the expected output)."""
    from reference.rules import load_rules
    from reference.grading import load_tasks
    all_tasks = load_tasks(result.parent.name, load_rules().benchmark(result.parent.name).eval_set)
    acc_log = result / "accuracy/mlperf_log_accuracy.json"
    entries = json.loads(acc_log.read_text())
    changed = {}
    for e in entries[:n]:
        if how == "oracle" and all_tasks[e["qsl_idx"]].oracle == bytes.fromhex(e["data"]).decode():
            continue  # already the oracle's program
        task = all_tasks[e["qsl_idx"]]
        changed[e["qsl_idx"]] = _changed(how, bytes.fromhex(e["data"]).decode(), task.answer, task)
        e["data"] = changed[e["qsl_idx"]].encode().hex().upper()
    acc_log.write_text(json.dumps(entries))
    t01 = result / "audit/TEST01/mlperf_log_accuracy.json"
    doc = json.loads(t01.read_text())
    for e in doc:
        if e["qsl_idx"] in changed:
            e["data"] = changed[e["qsl_idx"]].encode().hex().upper()
    t01.write_text(json.dumps(doc))
    from reference.rules import load_rules
    from reference.grading import Grader, load_tasks
    benchmark = result.parent.name
    bench = load_rules().benchmark(benchmark)
    tasks = load_tasks(benchmark, bench.eval_set)
    with Grader() as g:
        for trace in sorted(result.glob("**/agent_trace.jsonl")):  # every run of the result
            if trace.parent.parent.name == "accuracy":
                continue  # accuracy/<split>/: another data set's run
            recs = [json.loads(l) for l in trace.read_text().splitlines()]
            for rec in recs:
                if rec["qsl_idx"] not in changed:
                    continue
                rec["answer"] = changed[rec["qsl_idx"]]
                last = rec["steps"][-1]
                if benchmark == "nano-codegen":  # the last attempt is the logged program
                    last["text"] = f"Program:\n{rec['answer']}\nEnd\n"
                    last["tool_input"] = rec["answer"]
                    last["observation"] = g.verify(rec["answer"],
                                                   tasks[rec["qsl_idx"]].answer).feedback
                else:
                    last["text"] = f"Thought: I have the answer.\nFinal Answer: {rec['answer']}\n"
                last["generated_tokens"] = len(last["text"].encode())
                rec["generated_tokens"] = sum(s["generated_tokens"] for s in rec["steps"])
            trace.write_text("".join(json.dumps(r) + "\n" for r in recs))
        acc = json.loads((result / "accuracy/accuracy.json").read_text())
        acc["correct"] = sum(1 for e in entries if g.correct(
            benchmark, tasks[e["qsl_idx"]], bytes.fromhex(e["data"]).decode()))
    acc[bench.quality_metric] = round(acc["correct"] / acc["n_expected"], 4)
    acc["passed"] = acc[bench.quality_metric] >= acc.get("target", 1)
    (result / "accuracy/accuracy.json").write_text(json.dumps(acc))
    m = json.loads((result / "measurements.json").read_text())
    m["accuracy"] = acc
    (result / "measurements.json").write_text(json.dumps(m))
