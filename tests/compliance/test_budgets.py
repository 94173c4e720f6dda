"""The checker's cost is bounded: trace records, tool calls and sandbox time have caps, each a
T609 finding when hit; the reference's pre-seeded verdicts are the sandbox's own."""
import dataclasses
import json
import shutil
from pathlib import Path

from compliance.check import check_path
from reference.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"


def _rules(**checker):
    r = load_rules()
    return dataclasses.replace(r, checker={**r.checker, **checker})


def test_traces_past_the_record_budget_are_a_finding_not_a_slow_check(tmp_path):
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    report = check_path(root, "smoke", rules=_rules(max_trace_records=500))
    assert "T609" in report.rule_ids() and not report.valid


def test_tool_calls_past_the_reexecution_budget_are_a_finding(tmp_path):
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    assert check_path(root, "smoke").valid
    report = check_path(root, "smoke", rules=_rules(max_reexecuted_tool_calls=50))
    assert not report.valid
    found = [f for f in report.findings if f.rule == "T609"]
    assert found and all(f.expected == "<= 50 per result" for f in found)


def test_a_huge_trace_of_minimal_episodes_is_refused_quickly(tmp_path):
    import time
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    trace = root / "results/cpu/nano-react/Offline/performance/run_1/agent_trace.jsonl"
    rec = json.loads(trace.read_text().splitlines()[0])
    rec["steps"] = [{**rec["steps"][-1], "text": "Final Answer: 1\n"}]
    rec["question"] = "q"
    line = json.dumps(rec, separators=(",", ":"))
    n = 105_000  # each file under the per-file size cap; together over the record budget
    assert len(line) * n < 64 * 2**20
    trace.write_text((line + "\n") * n)
    (trace.parents[2] / "audit/TEST01/agent_trace.jsonl").write_text((line + "\n") * n)
    t0 = time.perf_counter()
    report = check_path(root, "smoke")
    assert "T609" in report.rule_ids()
    assert time.perf_counter() - t0 < 5


def test_sandbox_time_past_the_budget_is_a_finding(tmp_path):
    from reference.grading import _SHARED
    from tests.compliance.mutate import apply
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    # programs the reference never wrote (no seeded verdict): they must run in the sandbox
    apply(root, {"op": "wrong_answers", "result": "results/cpu/nano-codegen/Offline", "n": 5,
                 "how": "equivalent"})
    from compliance import context
    _SHARED.clear()  # nothing cached: every program must run
    context._SEEDED.clear()
    report = check_path(root, "smoke", rules=_rules(max_sandbox_s=0.0))
    assert "T609" in report.rule_ids() and not report.valid


def test_seeded_reference_verdicts_are_what_the_sandbox_says():
    from compliance.context import seed_reference_verdicts
    from reference.codegen.sandbox import Verifier
    from reference.grading import _SHARED, load_tasks
    from compliance import context
    context._SEEDED.clear()
    rules = load_rules()
    seed_reference_verdicts(rules)
    bench = rules.benchmark("nano-codegen")
    tasks = load_tasks("nano-codegen", bench.eval_set)
    rows = [json.loads(l) for l in bench.reference_results.read_text().splitlines()][::25]
    keys = [(r["answer"], tasks[r["qsl_idx"]].answer) for r in rows if r["correct"]]
    assert keys and all(k in _SHARED for k in keys)
    with Verifier(workers=1) as v:
        for key in keys:
            fresh = v.verify(*key)
            assert (fresh.kind, fresh.feedback) == (_SHARED[key].kind, _SHARED[key].feedback)
