import json
import random
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


# --- the generalisation split (issue 12) ----------------------------------------------------

import re  # noqa: E402

from reference.react.tasks import (GEN_PATH, HELDOUT_DIST, TRAIN_DIST, WORDS,  # noqa: E402
                                   generalisation_tasks, is_heldout_word,
                                   load_generalisation_set, parse_mix)


def _quoted_words(question: str) -> set[str]:
    return {w for phrase in re.findall(r"'([^']*)'", question) for w in phrase.split()}


def _numbers(question: str) -> list[str]:
    return re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", question)  # not the 2 of sqrt2


def test_generalisation_split_checksum_matches_recorded_and_regenerates():
    recorded = GEN_PATH.with_suffix(".sha256").read_text().split()[0]
    assert file_sha256(GEN_PATH) == recorded
    frozen = load_generalisation_set()
    assert [(t.question, t.answer) for t in frozen] == \
        [(t.question, t.answer) for t in generalisation_tasks()]


def test_generalisation_split_has_500_unique_tasks_with_only_heldout_words_and_wide_numbers():
    tasks = load_generalisation_set()
    assert len(tasks) >= 500 and len({t.question for t in tasks}) == len(tasks)
    assert set(Counter(t.template for t in tasks)) == set(TEMPLATES) - {"const_op_const"}
    for t in tasks:
        for w in _quoted_words(t.question):
            assert is_heldout_word(w) and w not in WORDS, (t.id, w)
        if t.template in ("const_op_number", "compare_consts", "product_vs_number"):
            # every operand written in the question has 7 integer digits (training: 1-6)
            ops = _numbers(t.question)[:2 if t.template == "product_vs_number" else 1]
            assert all(len(n.lstrip("-").split(".")[0]) == 7 for n in ops), (t.id, ops)


def test_training_sampler_never_draws_a_heldout_word():
    rng = random.Random(0)
    words = {TRAIN_DIST.word(rng) for _ in range(50_000)}
    assert not any(is_heldout_word(w) and w not in WORDS for w in words)
    # and the split itself draws nothing else
    rng = random.Random(0)
    assert all(is_heldout_word(HELDOUT_DIST.word(rng)) for _ in range(2_000))


def test_training_stream_never_sees_a_generalisation_word_or_question():
    gen = load_generalisation_set()
    gen_words = set().union(*(_quoted_words(t.question) for t in gen))
    gen_q = {t.question for t in gen}
    train = generate(TRAIN_SEED, 5000, exclude=gen_q, unique=False, p_detour=0.15, broad=0.7,
                     mix=parse_mix("sum_lengths=1.5,sum_lengths3=0.5"))
    for traj in train:
        assert traj.task.question not in gen_q
        assert not (set(re.findall(r"[a-z_]+", traj.text)) & gen_words), traj.task.question


def test_training_operands_stay_within_six_digits():
    for traj in generate(TRAIN_SEED, 3000, unique=False, broad=1.0):
        t = traj.task
        if t.template in ("const_op_number", "length_arith", "compare_consts"):
            assert all(len(n.lstrip("-").split(".")[0]) <= 6 for n in _numbers(t.question))


def test_broadened_training_tasks_are_checked_by_the_real_tools():
    kinds = Counter()
    for traj in generate(3, 400, broad=1.0, p_detour=0.2):
        lines = traj.text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Action: ") and traj.segments:
                inp = lines[i + 1][len("Action Input: "):]
                obs = lines[i + 2][len("Observation: "):]
                if not obs.startswith("Error:"):
                    assert obs == run_tool(line[len("Action: "):], inp)
        assert lines[-1] == f"Final Answer: {traj.task.answer}"
        q = traj.task.question
        kinds["negative"] += " -" in q
        kinds["decimal"] += bool(re.search(r"\d\.\d", q))
        kinds["random_word"] += any(w not in WORDS for w in _quoted_words(q))
    assert min(kinds.values()) > 10, kinds
