"""Replay (R801): closed-division episodes re-run with the reference checkpoint come out as
logged; a trace rewritten consistently (texts, token counts, tool calls all agree) does not.
The default check never imports torch."""
import shutil
import subprocess
import sys
from pathlib import Path

from compliance.check import check_path
from compliance.context import Ctx
from compliance.replay import catch_probability, choose, fresh_seed
from loadgen_harness.untrusted.tree import Tree
from reference.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"


def test_the_default_check_does_not_import_torch():
    code = ("import sys; from compliance.check import check_path; "
            f"check_path({str(SMOKE)!r}, 'smoke'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_the_seed_is_the_checkers_and_no_edit_of_the_submission_steers_it(tmp_path):
    assert fresh_seed() != fresh_seed()
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    rules = load_rules()
    before = choose(Ctx(Tree(root), rules, "smoke"), 3, 7)
    # a microsecond edit of every log changes no choice: the seed is not the submission's
    for log in root.glob("results/**/mlperf_log_detail.txt"):
        log.write_text(log.read_text().replace('"time_ms": 0.0', '"time_ms": 0.000001', 1))
    after = choose(Ctx(Tree(root), rules, "smoke"), 3, 7)

    def key(picks):
        return [(rel, [line for line, _ in chosen]) for _, _, rel, chosen in picks]
    assert key(before) == key(after)
    assert key(choose(Ctx(Tree(root), rules, "smoke"), 3, 8)) != key(before)


def test_the_choice_is_stratified_over_every_run_and_split():
    picks = choose(Ctx(Tree(SMOKE), load_rules(), "smoke"), 2, 1)
    runs = {rel for _, _, rel, _ in picks}
    assert any("/performance/" in r for r in runs) and any("/audit/TEST01/" in r for r in runs)
    assert any("/audit/TEST04/" in r for r in runs)
    assert any("/accuracy/generalisation/" in r for r in runs)
    assert all(len(chosen) == 2 for _, _, _, chosen in picks)


def test_the_leaderboard_default_catches_a_fifth_fabricated_with_99_percent():
    rules = load_rules()
    n = int(rules.checker["leaderboard_replay"])
    allowed = int(rules.checker["replay_max_mismatch_fraction"] * n)
    assert catch_probability(0.2, n, allowed) >= 0.99


def test_honest_episodes_replay_exactly():
    report = check_path(SMOKE, "smoke", replay=2, replay_seed=5)
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
    assert isinstance(report.meta["replay_seed"], int)


def test_one_fabricated_run_is_caught_even_when_the_others_are_honest(tmp_path):
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    trace = root / "results/cpu/nano-react/Offline/audit/TEST01/agent_trace.jsonl"
    trace.write_text(trace.read_text().replace("Thought: I need", "Thought: U need"))
    report = check_path(root, "smoke", replay=3)
    r801 = [f for f in report.findings if f.rule == "R801"]
    assert r801 and all("TEST01" in f.file for f in r801), [f.to_dict() for f in r801]
