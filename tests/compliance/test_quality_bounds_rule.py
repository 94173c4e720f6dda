"""Q409 on the real smoke submission: nano-planner's bad-task and completion rates, recomputed
from the accuracy trace, are held to rules.yaml's bounds (or, for a subset, to the reference's
own figures on the same samples when those are looser)."""
import json
import shutil
from pathlib import Path

from compliance.check import check_path
from reference.planner.schema import dump_step

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
BENCH = "nano-planner"
TRACE = f"results/cpu/{BENCH}/Offline/accuracy/agent_trace.jsonl"


def _accuracy(root):
    return json.loads((root / f"results/cpu/{BENCH}/Offline/accuracy/accuracy.json").read_text())


def _waste(rec: dict) -> None:
    text = dump_step({"thought": "x", "task": "Look up the value of e", "tool": "lookup"})
    final = rec["steps"][-1]
    rec["steps"].insert(-1, {**final, "text": text, "tool": "lookup",
                             "tool_input": "Look up the value of e",
                             "observation": "2.71828", "generated_tokens": len(text),
                             "generation_ms": 0.0, "tool_ms": 0.0, "mask_ms": 0.0,
                             "executor_ms": 0.0})
    rec["generated_tokens"] += len(text)


def _add_a_wasted_step(root: Path, n: int) -> None:
    """Before the final answer of n accuracy episodes, a real lookup no oracle plan asked for
    (consistent with its text, its tool and the episode's token counts, and the same in every
    run's episode of those samples, as greedy decoding would write it: only Q409 sees it)."""
    path = root / TRACE
    out, samples = [], set()
    for k, line in enumerate(path.read_text().splitlines()):
        rec = json.loads(line)
        if k < n:
            _waste(rec)
            samples.add(rec["qsl_idx"])
        out.append(json.dumps(rec, separators=(",", ":")))
    path.write_text("\n".join(out) + "\n")
    for other in (root / f"results/cpu/{BENCH}/Offline").glob("*/**/agent_trace.jsonl"):
        if other == path or "accuracy" in other.parts:
            continue
        lines = [json.loads(line) for line in other.read_text().splitlines()]
        for rec in lines:
            if rec["qsl_idx"] in samples:
                _waste(rec)
        other.write_text("\n".join(json.dumps(r, separators=(",", ":")) for r in lines) + "\n")


def test_the_smoke_submission_states_its_planner_bounds_and_meets_them():
    bounds = _accuracy(SMOKE)["bounds"]
    assert set(bounds) == {"bad_task_rate", "completion_rate"}
    assert all(b["ok"] for b in bounds.values())
    assert check_path(SMOKE, "smoke").valid


def test_wasted_steps_past_the_bound_fail_q409_alone(tmp_path):
    root = tmp_path / "submission"
    shutil.copytree(SMOKE, root)
    _add_a_wasted_step(root, 5)   # a few: still within 0.05, but no longer what is stated
    report = check_path(root, "smoke")
    assert report.rule_ids() == {"Q409"}, [f.to_dict() for f in report.findings]
    assert all("stated" in f.message for f in report.findings)
    shutil.rmtree(root)
    shutil.copytree(SMOKE, root)
    _add_a_wasted_step(root, 40)  # 40 bad of about 540 tool steps: over 0.05
    report = check_path(root, "smoke")
    assert report.rule_ids() == {"Q409"}, [f.to_dict() for f in report.findings]
    assert any("bad_task_rate outside its bound" in f.message for f in report.findings)
