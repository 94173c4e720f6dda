"""The declared input space (issue 34): one Space per benchmark, its held-out partition, the
training switch that draws from it, and the fresh generalisation sets of reference.space_eval."""
import random
import re

import pytest

from reference.space import DIMS, Space, is_heldout, is_heldout_number
from reference.react import tasks as react
from reference.planner import tasks as planner

QUOTED = re.compile(r"'([^']*)'")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _values(text: str) -> set[str]:
    """Every quoted string, word of one, and integer part of 3+ digits in a question (the
    letter nano-codegen's count_char counts is drawn from its word, not a value of its own)."""
    text = re.sub(r"the letter '.'", "", text)
    out = set()
    for q in QUOTED.findall(text):
        out.add(f"'{q}'")
        out.update(q.split())
    for n in NUMBER.findall(QUOTED.sub("", text)):
        digits = n.lstrip("-").split(".")[0].split("e")[0]
        if len(digits) >= 3:
            out.add(digits)
    return out


def _held(value: str) -> bool:
    v = value.strip("'")
    return is_heldout_number(v) if v.isdigit() else is_heldout(v)


def test_the_partition_is_nano_reacts_word_partition():
    for w in ("apple", "Apple", "ZZZ", "qq", "12345"):
        assert is_heldout(w) == react.is_heldout_word(w)


def test_a_training_space_never_draws_a_heldout_value_and_a_heldout_space_only_those():
    rng = random.Random(3)
    train, held = Space("train", vocabulary=tuple(react.WORDS)), Space("heldout")
    for _ in range(2000):
        assert not is_heldout(train.word(rng)) and is_heldout(held.word(rng))
        assert not is_heldout(train.phrase(rng)) and is_heldout(held.phrase(rng))
        n, m = str(abs(train.int(rng, digits=(3, 8)))), str(abs(held.int(rng, digits=(3, 8))))
        assert not is_heldout_number(n) and is_heldout_number(m)


def test_the_space_covers_mixed_case_repeated_letters_long_words_and_wide_numbers():
    rng = random.Random(4)
    sp = Space("train")
    words = [sp.word(rng) for _ in range(3000)]
    assert {len(w) for w in words} == set(range(1, 21))
    assert any(w[0].isupper() and w[1:].islower() for w in words if len(w) > 1)
    assert any(w.isupper() for w in words if len(w) > 1)
    assert any(re.search(r"(.)\1\1", w) for w in words)
    assert max(len(sp.phrase(rng)) for _ in range(500)) == 60
    assert {len(str(sp.int(rng))) for _ in range(3000)} == set(range(1, 9))
    assert any(sp.number(rng).startswith("-") for _ in range(200))
    assert any("." in sp.number(rng) for _ in range(200))


@pytest.mark.parametrize("dim,check", [
    ("capitalised", lambda w: w[0].isupper() and w[1:] == w[1:].lower()),
    ("repeated_letters", lambda w: re.search(r"(.)\1", w.lower()) is not None),
    ("long_words", lambda w: 13 <= len(w) <= 20),
])
def test_a_forced_dimension_pins_every_word(dim, check):
    rng = random.Random(5)
    sp = Space("heldout").force(dim)
    assert all(check(sp.word(rng)) for _ in range(300))


def test_react_training_on_the_full_space_never_sees_a_value_of_its_space_sets():
    train = set()
    for t in react.generate(11, 1500, p_detour=0.15, unique=False, broad=0.7,
                            broad_dist=react.SPACE):
        train |= _values(t.task.question)
    split = set()
    for dim in DIMS:
        for t in react.space_tasks(dim, 40):
            split |= _values(t.question)
    assert split and train and not (train & split)
    assert all(_held(v) for v in split)


def test_react_space_sets_force_their_dimension_and_fit_the_episode():
    counts = react.space_tasks("counts_5_6", 30)
    assert {t.template for t in counts} == {"sum_lengths"}
    assert {t.n_tool_calls for t in counts} <= {6, 7}  # 5-6 lengths and a sum: 8 steps at most
    assert all(re.search(r"\b\d{8}\b", t.question) for t in react.space_tasks("digits_8", 30))
    assert react.space_tasks("long_lists", 5) == []  # no nano-react template takes a list
    longest = max(len(t.text.encode()) for t in react.generate(
        2, 400, dist=react.SPACE.force("counts_5_6"), templates=["sum_lengths"], unique=False))
    assert longest <= react.CONTEXT_BUDGET <= 1024


def test_react_frozen_distribution_is_untouched_by_the_space():
    a = [t.text for t in react.generate(9, 50, p_detour=0.3, broad=0.5)]
    b = [t.text for t in react.generate(9, 50, p_detour=0.3, broad=0.5,
                                        broad_dist=react.TRAIN_DIST)]
    assert a == b


def test_planner_training_on_the_full_space_never_sees_a_value_of_its_space_sets():
    train = set()
    for t in planner.generate(12, 600, p_detour=0.15, unique=False, broad=0.7):
        train |= _values(t.task.request)
    split = set()
    for dim in ("whole", "capitalised", "counts_5_6", "digits_8"):
        for t in planner.space_tasks(dim, 25):
            split |= _values(t.request)
    assert split and train and not (train & split)
    assert all(_held(v) for v in split)


def test_planner_space_sets_count_five_or_six_and_fit_the_context():
    tasks = planner.space_tasks("counts_5_6", 20)
    assert all(planner.MIN_CALLS <= t.n_calls <= planner.MAX_CALLS for t in tasks)
    assert all(len(QUOTED.findall(t.request)) in (5, 6) for t in tasks)
    longest = max(len(t.text.encode()) for t in planner.generate(
        3, 300, dist=planner.PLANNER_SPACE.force("long_strings"), unique=False))
    assert longest <= 1280


def test_codegen_training_on_the_full_space_never_sees_a_value_of_its_space_sets():
    from reference.codegen import tasks as codegen
    from reference.codegen.sandbox import Verifier
    with Verifier(workers=2) as v:
        train = set()
        for t in codegen.generate(13, 300, v, variety="space"):
            train |= _values(t.prompt.replace("[", " ").replace("]", " "))
        split = set()
        for dim in ("capitalised", "long_lists", "digits_8", "counts_5_6"):
            tasks = codegen.space_tasks(dim, 20, v)
            for t in tasks:
                split |= _values(t.prompt.replace("[", " ").replace("]", " "))
        assert all(15 <= len(t.prompt.split(", ")) for t in codegen.space_tasks("long_lists", 10, v)
                   if t.template != "range_list")
    assert split and train and not (train & split)
    assert all(_held(v) for v in split)


def test_space_eval_scores_the_committed_nano_react_on_a_dimension(capsys, tmp_path):
    import json

    from reference.space_eval import main
    out = tmp_path / "r.json"
    assert main(["nano-react", "--n", "4", "--dims", "digits_8,long_lists",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits_8" in printed and "long_lists" in printed and "skipped" in printed
    summary = json.loads(out.read_text())["summary"]
    assert summary["dims"]["digits_8"]["n"] == 4 and "long_lists" not in summary["dims"]


def test_space_full_switches_each_benchmarks_broadened_share_to_the_declared_space():
    from itertools import islice

    from reference.planner.training import PlannerTraining
    from reference.react.training import ReactTraining
    from reference.train import parse_args
    cfg = parse_args(["nano-react", "--broad", "0.7", "--space", "full", "--steps", "1"])
    assert cfg.space == "full"
    react_text = "".join(t for segs in islice(ReactTraining(cfg).stream(1, set()), 300)
                         for _, t in segs)
    plain = parse_args(["nano-react", "--broad", "0.7", "--steps", "1"])
    plain_text = "".join(t for segs in islice(ReactTraining(plain).stream(1, set()), 300)
                         for _, t in segs)
    upper = re.compile(r"'[^'\n]*[A-Z][^'\n]*'")
    assert upper.search(react_text) and not upper.search(plain_text)
    pcfg = parse_args(["nano-planner", "--space", "full", "--steps", "1"])
    ptext = "".join(t for segs in islice(PlannerTraining(pcfg).stream(1, set()), 200)
                    for _, t in segs)
    assert upper.search(ptext)
