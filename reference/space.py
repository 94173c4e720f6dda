"""The declared input space of the nano agents' task templates, and its held-out partition.

    from reference.space import Space
    SPACE = Space("train", vocabulary=WORDS)           # training: never a held-out value
    SPACE.heldout().phrase(rng)                        # a generalisation split: only held-out

One frozen dataclass says what a template's words, quoted strings, lists, counts and numbers
may be: the alphabet (lower and upper case, letters repeated in runs), word lengths, quoted
string lengths, list lengths, counts of items, integer digit widths, signs and decimals. The
benchmarks' generators (reference/react/tasks.py, reference/codegen/tasks.py,
reference/planner/tasks.py) draw from a Space when asked for the whole space (training with
`--space full`, reference/space_eval.py); their frozen sets keep the distributions they were
made with, so those files regenerate byte-identically.

The partition: a value is held out when the first byte of its SHA-256 is below 32 (about 1 in 8
strings; the same function as nano-react's `is_heldout_word`, so the committed splits stay
held out). Words and quoted strings are partitioned whole (case included); integers by their
digits when they have at least HELDOUT_MIN_DIGITS of them (smaller ones are too few to split
and are shared). A `train` Space never returns a held-out value and a `heldout` Space returns
only held-out ones, so training provably never sees a split's value (tests/test_space.py).

`dims` are named views of the space that a generalisation set forces one at a time
(capitalised words, repeated letters, long words, long strings, long lists, counts 5-6,
8-digit numbers): `space.force(dim)`.

Limits: the space is what the templates can say in English over the four tools and the
sandbox; each template still bounds what its episode allows (context, steps, sandbox time) and
says so where it draws.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

LOWER = "abcdefghijklmnopqrstuvwxyz"
CASES = ("lower", "capitalised", "upper", "mixed")
HELDOUT_MIN_DIGITS = 3  # integers narrower than this are shared by training and every split


def is_heldout(text: str) -> bool:
    """True for values reserved for generalisation splits (about 1 in 8)."""
    return hashlib.sha256(text.encode()).digest()[0] < 32


def is_heldout_number(text: str) -> bool:
    """True for a number whose integer digits are held out (sign and decimals are free)."""
    digits = text.lstrip("+-").split(".")[0].split("e")[0]
    return len(digits) >= HELDOUT_MIN_DIGITS and is_heldout(digits)


@dataclass(frozen=True)
class Space:
    """What a template's inputs may be. `name` is the side: `train` (vocabulary words or random
    strings, never held out) or `heldout` (held-out random strings outside the vocabulary)."""
    name: str                                    # "train" | "heldout"
    vocabulary: tuple[str, ...] = ()             # real words the train side may draw
    p_vocab: float = 0.3                         # train: share of words from the vocabulary
    word_len: tuple[int, int] = (1, 20)          # letters in a random word
    case_weights: tuple[float, ...] = (0.55, 0.2, 0.1, 0.15)  # lower, capitalised, upper, mixed
    p_repeat: float = 0.25                       # share of words with a run of 2-4 equal letters
    max_words: int = 6                           # words in a quoted string
    string_chars: tuple[int, int] = (1, 60)      # characters in a quoted string
    list_len: tuple[int, int] = (2, 20)          # items in a list
    counts: tuple[int, int] = (2, 6)             # items a counting template counts
    digits: tuple[int, int] = (1, 8)             # digits of an integer
    p_negative: float = 0.15                     # share of signed operands that are negative
    p_decimal: float = 0.15                      # share of operands with decimals (where allowed)

    # -- views --------------------------------------------------------------------------
    def heldout(self) -> "Space":
        return replace(self, name="heldout")

    def force(self, dim: str) -> "Space":
        """This space with one dimension pinned to its hard end (see DIMS)."""
        return replace(self, **DIMS[dim])

    # -- words and strings --------------------------------------------------------------
    def _random_word(self, rng: random.Random, lo: int, hi: int) -> str:
        n = rng.randint(lo, hi)
        if n >= 2 and rng.random() < self.p_repeat:  # one letter run of 2-4 (bookkeeper)
            run = rng.randint(2, min(4, n))
            letters = [rng.choice(LOWER) for _ in range(n - run + 1)]
            i = rng.randrange(len(letters))
            letters[i] = letters[i] * run
            return "".join(letters)
        return "".join(rng.choice(LOWER) for _ in range(n))

    def _case(self, rng: random.Random, w: str) -> str:
        case = rng.choices(CASES, self.case_weights)[0]
        if case == "capitalised":
            return w.capitalize()
        if case == "upper":
            return w.upper()
        if case == "mixed":
            return "".join(c.upper() if rng.random() < 0.5 else c for c in w)
        return w

    def word(self, rng: random.Random, length: tuple[int, int] | None = None) -> str:
        """One word of the space on this side of the partition."""
        lo, hi = length or self.word_len
        vocab = [w for w in self.vocabulary if lo <= len(w) <= hi]
        while True:
            if self.name == "train" and vocab and rng.random() < self.p_vocab:
                w = rng.choice(vocab)
            else:
                w = self._random_word(rng, lo, hi)
            w = self._case(rng, w)
            if self.name == "heldout" and w.lower() in self.vocabulary:
                continue
            if is_heldout(w) == (self.name == "heldout"):
                return w

    def phrase(self, rng: random.Random, max_chars: int | None = None) -> str:
        """A quoted string: 1..max_words words, string_chars long (at most max_chars, a
        template's own bound), itself on this side of the partition."""
        lo, hi = self.string_chars
        hi = min(hi, max_chars or hi)
        lo = min(lo, hi)
        while True:
            k = rng.randint(1, self.max_words)
            # words no longer than the string may be, so short strings do not reject forever
            wl_lo = min(self.word_len[0], hi)
            wl = (wl_lo, max(wl_lo, min(self.word_len[1], hi)))
            s = " ".join(self.word(rng, wl) for _ in range(k))
            if lo <= len(s) <= hi and (k == 1 or is_heldout(s) == (self.name == "heldout")):
                return s

    # -- numbers ------------------------------------------------------------------------
    def int(self, rng: random.Random, signed: bool = False, lo_digits: int | None = None,
            d: int | None = None, digits: tuple[int, int] | None = None) -> int:
        """An integer of `d` digits (or drawn from `digits`/the space's), on this side."""
        lo, hi = digits or self.digits
        while True:
            nd = d or rng.randint(max(lo, lo_digits or lo), hi)
            n = rng.randint(10 ** (nd - 1) if nd > 1 else 0, 10 ** nd - 1)
            if nd < HELDOUT_MIN_DIGITS or is_heldout(str(n)) == (self.name == "heldout"):
                return -n if signed and rng.random() < self.p_negative else n

    def number(self, rng: random.Random, signed: bool = True, nonzero: bool = False,
               digits: tuple[int, int] | None = None) -> str:
        """An operand as text: maybe negative, maybe with one or two decimals."""
        while True:
            n = self.int(rng, digits=digits)
            if not (nonzero and n == 0):
                break
        text = str(n)
        if rng.random() < self.p_decimal:
            text += f".{rng.randint(1, 99):02d}".rstrip("0") if rng.random() < 0.5 else \
                f".{rng.randint(1, 9)}"
        if signed and rng.random() < self.p_negative:
            text = "-" + text
        return text

    def ints(self, rng: random.Random, n: int | None = None) -> list[int]:
        """A list of list_len signed integers; half the lists of one digit width."""
        k = n or rng.randint(*self.list_len)
        if rng.random() < 0.5:
            d = rng.randint(*self.digits)
            return [self.int(rng, True, d=d) for _ in range(k)]
        return [self.int(rng, True) for _ in range(k)]

    def count(self, rng: random.Random, lo: int | None = None, hi: int | None = None) -> int:
        """How many items a counting template counts, within its own bounds [lo, hi]."""
        a, b = self.counts
        return rng.randint(max(a, lo or a), min(b, hi or b))


# The dimensions a generalisation set forces one at a time: each pins the hard end of the space
# (the whole space is the `whole` set). Which templates have a dimension, each generator says.
DIMS: dict[str, dict] = {
    "whole": {},
    "capitalised": {"case_weights": (0.0, 1.0, 0.0, 0.0)},
    "repeated_letters": {"p_repeat": 1.0, "word_len": (3, 20)},
    "long_words": {"word_len": (13, 20)},
    "long_strings": {"string_chars": (40, 60), "word_len": (4, 20)},
    "long_lists": {"list_len": (15, 20)},
    "counts_5_6": {"counts": (5, 6)},
    "digits_8": {"digits": (8, 8)},
}
# which of the template-declared input kinds a dimension needs
DIM_NEEDS = {"whole": None, "capitalised": "words", "repeated_letters": "words",
             "long_words": "words", "long_strings": "strings", "long_lists": "lists",
             "counts_5_6": "counts", "digits_8": "numbers"}
