"""nano-planner tasks: frozen files, the generalisation split, oracle plans and SFT segments."""
import re
from collections import Counter

from reference.planner import tasks as T
from reference.planner.schema import parse_step
from reference.react.tasks import WORDS, is_heldout_word
from reference.sft import IGNORE_INDEX, build_sft_labels
from reference.tools import run_tool


def test_frozen_eval_set_equals_the_generator_and_its_recorded_sha256():
    assert T.EVAL_PATH.read_text() == T.frozen_text(T.eval_tasks())
    assert T.file_sha256(T.EVAL_PATH) == T.EVAL_SHA256
    assert T.EVAL_PATH.with_suffix(".sha256").read_text().split()[0] == T.EVAL_SHA256
    assert len(T.load_eval_set()) == T.EVAL_SIZE >= 500


def test_frozen_generalisation_split_equals_the_generator_and_its_recorded_sha256():
    assert T.GEN_PATH.read_text() == T.frozen_text(T.generalisation_tasks())
    assert T.file_sha256(T.GEN_PATH) == T.GEN_SHA256
    assert T.GEN_PATH.with_suffix(".sha256").read_text().split()[0] == T.GEN_SHA256


def test_every_frozen_task_has_3_to_8_calls_whose_oracle_reruns_to_its_answer():
    for task in T.load_eval_set() + T.load_generalisation_set():
        assert T.MIN_CALLS <= task.n_calls == len(task.oracle) <= T.MAX_CALLS
        for call in task.oracle:
            assert run_tool(call.tool, call.input) == call.observation
        assert task.answer == task.oracle[-1].observation


def test_the_frozen_set_covers_every_template_every_tool_and_every_length():
    tasks = T.load_eval_set()
    assert set(Counter(t.template for t in tasks)) == set(T.TEMPLATES)
    assert {c.tool for t in tasks for c in t.oracle} == {"calculator", "string_length", "lookup",
                                                         "compare"}
    assert set(t.n_calls for t in tasks) == set(range(3, 9))
    assert len({t.request for t in tasks}) == len(tasks)


def _quoted(request):
    return [w for phrase in re.findall(r"'([^']*)'", request) for w in phrase.split()]


def test_generalisation_words_are_held_out_and_never_in_training():
    gen = T.load_generalisation_set()
    words = [w for t in gen for w in _quoted(t.request)]
    assert words and all(is_heldout_word(w) and w not in WORDS for w in words)
    train_words = {w for traj in T.generate(T.TRAIN_SEED, 400) for w in _quoted(traj.task.request)}
    assert not any(is_heldout_word(w) and w not in WORDS for w in train_words)


def test_generalisation_numbers_are_wider_than_the_frozen_sets():
    def operands(tasks):
        return [float(n) for t in tasks for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w'])",
                                                            t.request)]
    assert max(abs(x) for x in operands(T.load_eval_set())) < 1000
    wide = operands(T.load_generalisation_set())
    assert wide and min(abs(x) for x in wide) >= 10_000


def test_training_requests_never_equal_a_frozen_request():
    frozen = {t.request for t in T.load_eval_set() + T.load_generalisation_set()}
    for traj in T.generate(T.TRAIN_SEED, 300, exclude=frozen, unique=False):
        assert traj.task.request not in frozen


def test_a_trajectory_is_the_request_then_schema_valid_steps_and_masked_results():
    for traj in T.generate(3, 50, p_detour=0.5):
        roles = [r for r, _ in traj.segments]
        assert roles[0] == "prompt" and traj.segments[0][1] == T.request_line(traj.task.request)
        assert roles[-1] == "agent"
        assert parse_step(traj.segments[-1][1])[0] == {"final_answer": traj.task.answer}
        for role, text in traj.segments[1:]:
            if role in ("agent", "agent_masked"):
                assert parse_step(text)[0] is not None, text
            else:
                assert role == "observation" and text.startswith("\n" + T.RESULT)
        ids, labels = build_sft_labels(traj.segments)
        learned = bytes(i for i, l in zip(ids, labels) if l != IGNORE_INDEX).decode()
        assert learned == "".join(t for r, t in traj.segments if r == "agent")
        assert "Result:" not in learned and "Request:" not in learned


def test_detours_are_bad_tasks_followed_by_the_right_step():
    seen = 0
    for traj in T.generate(4, 80, p_detour=1.0):
        segs = traj.segments
        i = next(k for k, (r, _) in enumerate(segs) if r == "agent_masked")
        assert segs[i + 1][1].startswith("\nResult: Error: bad task:")
        assert '"thought":"That failed. ' in segs[i + 2][1]
        seen += 1
    assert seen == 80


def test_the_generator_is_deterministic_for_a_seed():
    a = [t.text for t in T.generate(11, 20, p_detour=0.3)]
    b = [t.text for t in T.generate(11, 20, p_detour=0.3)]
    assert a == b


def test_a_training_mix_weights_templates_and_refuses_bad_entries():
    import pytest
    mix = T.parse_mix("average_length=5,scaled_const_vs_number=0")
    counts = Counter(t.task.template for t in T.generate(2, 300, mix=mix))
    assert counts["scaled_const_vs_number"] == 0
    assert counts["average_length"] > 2 * max(v for k, v in counts.items() if k != "average_length")
    for bad in ("nope=1", "average_length", "average_length=-1",
                ",".join(f"{k}=0" for k in T.TEMPLATES)):
        with pytest.raises(ValueError):
            T.parse_mix(bad)
