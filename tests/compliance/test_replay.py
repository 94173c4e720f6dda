"""Replay (R801): closed-division episodes re-run with the reference checkpoint come out as
logged; a trace rewritten consistently (texts, token counts, tool calls all agree) does not.
The default check never imports torch."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from compliance.check import check_path
from compliance.replay import choose, replay_seed

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"


def test_the_default_check_does_not_import_torch():
    code = ("import sys; from compliance.check import check_path; "
            f"check_path({str(SMOKE)!r}, 'smoke'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_the_replayed_episodes_follow_from_the_submissions_own_hash():
    a, b = replay_seed({"x": "1"}), replay_seed({"x": "2"})
    assert a != b and a == replay_seed({"x": "1"})


def test_honest_episodes_replay_exactly():
    report = check_path(SMOKE, "smoke", replay=2)
    assert report.valid, [f.to_dict() for f in report.findings]


def test_a_consistently_rewritten_trace_fails_the_replay(tmp_path):
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    # every nano-react step rewritten with the same byte length: tokens, tools and answers
    # still agree with the text, so only running the model again can tell
    for trace in root.glob("results/cpu/nano-react/*/*/agent_trace.jsonl"):
        trace.write_text(trace.read_text().replace("Thought: I need", "Thought: U need"))
    for trace in root.glob("results/cpu/nano-react/*/*/*/agent_trace.jsonl"):
        trace.write_text(trace.read_text().replace("Thought: I need", "Thought: U need"))
    assert check_path(root, "smoke").valid  # nothing else can see it
    report = check_path(root, "smoke", replay=2)
    assert report.rule_ids() == {"R801"}, [f.to_dict() for f in report.findings]
