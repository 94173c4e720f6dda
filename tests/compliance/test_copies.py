"""T613: the committed reference submission resubmitted, with a microsecond of jitter on every
episode, is found by its runs' content (samples, order, latencies), not by its bytes."""
import gzip
import json
import shutil
from pathlib import Path

from compliance.check import check_path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results/closed/reference"


def test_the_reference_resubmitted_with_jitter_is_a_copy(tmp_path):
    root = tmp_path / "closed/reference"   # its own name: only the copy is wrong
    shutil.copytree(REFERENCE, root)
    for trace in root.glob("results/*/*/*/performance/run_1/agent_trace.jsonl.gz"):
        recs = [json.loads(line) for line in gzip.open(trace, "rt")]
        for rec in recs:
            rec["latency_ms"] = round(rec["latency_ms"] + 0.001, 6)
        with gzip.open(trace, "wt") as f:
            f.write("".join(json.dumps(r) + "\n" for r in recs))
    report = check_path(root, "official")
    assert report.rule_ids() == {"T613"}, [f.to_dict() for f in report.findings]


def test_the_committed_reference_is_not_a_copy_of_itself():
    assert "T613" not in check_path(REFERENCE, "official").rule_ids()
