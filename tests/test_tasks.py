import json
from collections import Counter

from reference.react.tasks import (EVAL_PATH, SEED_TASKS, TEMPLATES, TRAIN_SEED, VAL_SEED,
                                   file_sha256, generate, load_eval_set)
from reference.tools import run_tool


def test_eval_set_checksum_matches_recorded():
    recorded = (EVAL_PATH.parent / "eval.sha256").read_text().split()[0]
    assert file_sha256(EVAL_PATH) == recorded


def test_eval_set_has_1000_unique_tasks_from_every_template():
    tasks = load_eval_set()
    assert len(tasks) >= 1000
    assert len({t.question for t in tasks}) == len(tasks)
    assert len({t.id for t in tasks}) == len(tasks)
    assert set(Counter(t.template for t in tasks)) == set(TEMPLATES)
    assert all(2 <= t.n_tool_calls <= 5 for t in tasks)


def test_seed_tasks_are_verbatim_with_their_answers():
    tasks = load_eval_set()
    assert [(t.question, t.answer) for t in tasks[:4]] == SEED_TASKS
    assert [a for _, a in SEED_TASKS] == ["130", "greater", "6.28318", "less"]


def test_eval_set_is_regenerated_identically():
    regen = [t.task for t in generate(20261121, 1000, prefix="react-", with_seed_tasks=True)]
    frozen = load_eval_set()
    assert [t.question for t in regen] == [t.question for t in frozen]
    assert [t.answer for t in regen] == [t.answer for t in frozen]


def test_training_stream_shares_no_question_with_eval_set():
    eval_q = {t.question for t in load_eval_set()}
    train = generate(TRAIN_SEED, 5000, exclude=eval_q, unique=False, p_detour=0.15)
    assert not any(t.task.question in eval_q for t in train)


def test_generator_is_deterministic_for_a_seed():
    a = [t.text for t in generate(VAL_SEED, 50, p_detour=0.2)]
    b = [t.text for t in generate(VAL_SEED, 50, p_detour=0.2)]
    assert a == b and a != [t.text for t in generate(VAL_SEED + 1, 50, p_detour=0.2)]


def test_trajectories_use_all_four_tools_with_real_observations():
    used = Counter()
    for traj in generate(5, 300):
        lines = traj.text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Action: "):
                tool = line[len("Action: "):]
                inp = lines[i + 1][len("Action Input: "):]
                assert lines[i + 2] == f"Observation: {run_tool(tool, inp)}"
                used[tool] += 1
        assert lines[-1] == f"Final Answer: {traj.task.answer}"
    assert set(used) == {"calculator", "string_length", "lookup", "compare"}


def test_detours_show_an_error_then_the_right_call():
    trajs = [t for t in generate(11, 200, p_detour=1.0)]
    for t in trajs:
        roles = [r for r, _ in t.segments]
        i = roles.index("agent_masked")
        assert t.segments[i + 1][1].startswith("Observation: Error:")
        assert roles[i + 2] == "agent"


def test_eval_file_is_sorted_json_lines():
    for line in EVAL_PATH.read_text().splitlines()[:10]:
        row = json.loads(line)
        assert list(row) == sorted(row)
