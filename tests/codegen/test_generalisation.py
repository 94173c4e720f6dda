"""nano-codegen's generalisation split (issue 12): held-out words, longer lists, bigger ints."""
import random
import re

import pytest

from reference.codegen.sandbox import Verifier
from reference.codegen.tasks import (CODE_TRAIN, EVAL_PATH, GEN_PATH, TEMPLATES, VARIETY,
                                     generalisation_tasks, generate, load_eval_set,
                                     load_generalisation_set)
from reference.react.tasks import WORDS, is_heldout_word
from reference.hashing import file_sha256

LIST_TEMPLATES = {"sum_list", "max_list", "min_list", "sorted_list", "reverse_list"}
WORD_TEMPLATES = {"reverse_string", "length", "upper", "count_char"}


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2) as v:
        yield v


def _quoted(prompt: str) -> list[str]:
    return re.findall(r"'([^']*)'", prompt)


def _list(prompt: str) -> list[int]:
    return [int(x) for x in re.search(r"\[([^\]]*)\]", prompt).group(1).split(", ")]


def test_generalisation_split_checksum_and_regeneration(verifier):
    assert GEN_PATH.with_suffix(".sha256").read_text().split()[0] == file_sha256(GEN_PATH)
    frozen = load_generalisation_set()
    assert [(t.prompt, t.answer) for t in frozen] == \
        [(t.prompt, t.answer) for t in generalisation_tasks(verifier)]


def test_frozen_set_is_still_regenerated_identically(verifier):
    from reference.codegen.tasks import EVAL_SEED, EVAL_SIZE
    regen = generate(EVAL_SEED, EVAL_SIZE, verifier, with_seed_tasks=True)
    assert [(t.prompt, t.answer) for t in regen] == \
        [(t.prompt, t.answer) for t in load_eval_set(EVAL_PATH)]


def test_generalisation_split_is_out_of_the_training_ranges():
    tasks = load_generalisation_set()
    assert len(tasks) >= 500 and len({t.prompt for t in tasks}) == len(tasks)
    assert {t.template for t in tasks} == set(TEMPLATES)
    for t in tasks:
        if t.template in WORD_TEMPLATES:
            w = _quoted(t.prompt)[-1]
            assert is_heldout_word(w) and w not in WORDS, t.prompt
        if t.template in LIST_TEMPLATES:  # longer than training's 10, or wider than its widest
            xs = _list(t.prompt)
            assert len(xs) > CODE_TRAIN.list_len[1] or \
                any(abs(x) >= 10 ** CODE_TRAIN.digits[1] for x in xs), t.prompt
        if t.template in ("power", "sum_range", "range_list"):
            widest = max(int(n) for n in re.findall(r"\d+", t.prompt))
            assert widest >= 10 ** CODE_TRAIN.digits[1], t.prompt


def test_training_words_lists_and_ints_never_reach_the_split(verifier):
    gen_words = {_quoted(t.prompt)[-1] for t in load_generalisation_set()
                 if t.template in WORD_TEMPLATES}
    rng = random.Random(0)
    for _ in range(20_000):
        w = CODE_TRAIN.word(rng)
        assert not (is_heldout_word(w) and w not in WORDS)
    for variety in ("wide", "words", "copy", "copy-long"):
        for t in generate(1, 600, verifier, variety=variety):
            assert not set(_quoted(t.prompt)) & gen_words
            if t.template in LIST_TEMPLATES and "['" in t.prompt:  # the copy stages' strings
                assert variety.startswith("copy") and t.template != "sum_list", t.prompt
                items = re.search(r"\[([^\]]*)\]", t.prompt).group(1).split(", ")
                assert len(items) <= (16 if variety == "copy-long" else 10)
                assert all(re.fullmatch(r"'\d{1,12}'", x) for x in items) or (
                    variety == "copy-long" and all(re.fullmatch(r"'[a-z]+'", x) for x in items)), \
                    t.prompt
            elif t.template in LIST_TEMPLATES:
                xs = _list(t.prompt)
                assert len(xs) <= CODE_TRAIN.list_len[1]
                assert all(abs(x) < 10 ** CODE_TRAIN.digits[1] for x in xs)


def test_copy_stage_draws_digit_string_lists_and_leaves_earlier_streams_alone(verifier):
    import hashlib

    def digest(variety):
        tasks = generate(7, 120, verifier, variety=variety)
        return hashlib.sha256("\n".join(t.prompt + t.answer for t in tasks).encode()).hexdigest()
    # the tasks every earlier recipe drew (measured before the copy stage existed)
    assert digest("wide")[:16] == "d4ae1e0bae704044"
    assert digest(False)[:16] == "005fc0372f0e7011"
    assert digest("copy")[:16] == "5119efc6521f6c8d"  # stage 3's, before copy-long existed
    copy = generate(7, 300, verifier, variety="copy")
    strings = [t for t in copy if t.template in LIST_TEMPLATES and "['" in t.prompt]
    assert 0.05 < len(strings) / len(copy) < 0.25   # a third of the four sortable templates
    assert any(len(x) > CODE_TRAIN.digits[1] for t in strings for x in _quoted(t.prompt))


def test_first_variety_stage_is_unchanged():
    # the committed recipe's stage 2 (`--variety`) draws what it drew before issue 12
    assert VARIETY.words == "vocab_or_any" and VARIETY.word_len == (2, 12)


def test_long_copy_stage_has_long_string_lists_but_no_long_integer_list(verifier):
    tasks = generate(3, 400, verifier, variety="copy-long")
    lists = [re.search(r"\[([^\]]*)\]", t.prompt).group(1).split(", ")
             for t in tasks if t.template in LIST_TEMPLATES]
    strings = [xs for xs in lists if xs[0].startswith("'")]
    assert max(len(xs) for xs in strings) > CODE_TRAIN.list_len[1]
    assert any(x[1].isalpha() for xs in strings for x in xs)
    assert max(len(xs) for xs in lists if not xs[0].startswith("'")) <= CODE_TRAIN.list_len[1]

