"""Seeded task generator for nano-codegen, in the style of the seed's task bank.

    python -m reference.codegen.tasks --show 3     # sample training trajectories

A task is a prompt and its expected output. The program's contract is the seed's: it assigns
`result`, and `str(result)` is compared with the expected output. Ground truth comes from
running each template's oracle program through the real sandbox, never from hand-written
answers. The eight seed tasks are instances of the templates and come first in the frozen set.

Training trajectories may carry repair detours: a plausible wrong program (an off-by-one
argument, the wrong builtin, a syntax slip, an import), its real verifier feedback, then the
oracle program; the failed attempt and the feedback are marked `agent_masked` / `observation`
so the model learns to fix, not to fail.

Limits: small templated tasks (lists of up to 8 small integers, short words).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from reference.react.tasks import WORDS, is_heldout_word
from reference.space import DIM_NEEDS, Space, is_heldout_number

DATA_DIR = Path(__file__).parent / "data"
EVAL_PATH = DATA_DIR / "eval.jsonl"
EVAL_SEED = 20261122
EVAL_SIZE = 500
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# The generalisation split: held-out words (the nano-react partition, is_heldout_word), lists
# longer than training's or of 7-digit integers, 7-digit scalars (CODE_HELDOUT below).
GEN_PATH = DATA_DIR / "generalisation.jsonl"
GEN_SEED = 20261202
GEN_SIZE = 500

# The seed's eight tasks, verbatim, with the outputs the seed expects.
SEED_TASKS = [
    ("Return the sum of [1, 2, 3, 4, 5]", "15", "result = sum([1, 2, 3, 4, 5])", "sum_list"),
    ("Reverse the string 'hello'", "olleh", "result = 'hello'[::-1]", "reverse_string"),
    ("Return the length of 'benchmark'", "9", "result = len('benchmark')", "length"),
    ("Return 2 to the power of 10", "1024", "result = 2 ** 10", "power"),
    ("Return the sorted version of [3, 1, 4, 1, 5]", "[1, 1, 3, 4, 5]",
     "result = sorted([3, 1, 4, 1, 5])", "sorted_list"),
    ("Return the maximum of [4, 20, 7, 13]", "20", "result = max([4, 20, 7, 13])", "max_list"),
    ("Repeat the string 'ab' 3 times", "ababab", "result = 'ab' * 3", "repeat"),
    ("Return a list of the numbers from 0 to 4", "[0, 1, 2, 3, 4]", "result = list(range(5))",
     "range_list"),
]


@dataclass(frozen=True)
class CodeTask:
    id: str
    template: str
    prompt: str
    answer: str      # expected str(result)
    oracle: str      # a program that solves it

    @property
    def question(self) -> str:
        """The prompt, under the name traces and the harness use for every workload."""
        return self.prompt


@dataclass(frozen=True)
class CodeDist:
    """Where a task's words and numbers come from beyond the frozen set's (which is `None`).

    `arith_free` writes oracles without arithmetic (`range(1, 37 + 1)`); `words`: `vocab_or_any`
    (the first variety stage: half random strings, held-out ones not avoided), `train` (half
    random strings, never held-out ones) or `heldout` (held-out random strings only)."""
    name: str
    words: str
    word_len: tuple[int, int]        # letters in a random word
    list_len: tuple[int, int]        # elements in a list
    digits: tuple[int, int]          # digits of an integer (in lists and scalars)
    p_negative: float                # share of list elements that are negative
    p_long: float = 0.0              # heldout: share of lists longer than training's
    p_same_width: float = 0.0        # share of lists whose elements all have one digit count
    arith_free: bool = True
    p_str_list: float = 0.0          # share of lists (where strings do) of quoted digit strings
    str_list_len: tuple[int, int] = (2, 10)  # elements in such a list
    p_word_items: float = 0.0        # share of such lists made of words instead of digit strings

    def word(self, r: random.Random, length: tuple[int, int] | None = None) -> str:
        lo, hi = length or self.word_len
        if self.words == "vocab_or_any":
            if r.random() < 0.5:
                return "".join(r.choice(LETTERS) for _ in range(r.randint(lo, hi)))
            return r.choice(WORDS)
        if self.words == "train" and length is None and r.random() < 0.5:
            return r.choice(WORDS)
        while True:
            w = "".join(r.choice(LETTERS) for _ in range(r.randint(lo, hi)))
            if is_heldout_word(w) == (self.words == "heldout") and w not in WORDS:
                return w

    def int(self, r: random.Random, signed: bool = False, lo_digits: int | None = None,
            d: int | None = None) -> int:
        d = d or r.randint(lo_digits or self.digits[0], self.digits[1])
        n = r.randint(10 ** (d - 1) if d > 1 else 0, 10 ** d - 1)
        return -n if signed and r.random() < self.p_negative else n

    def ints(self, r: random.Random) -> list[int]:
        if self.p_long and r.random() < self.p_long:  # longer than training, any width
            return [self.int(r, True, 1) for _ in range(r.randint(11, 14))]
        if self.p_same_width and r.random() < self.p_same_width:
            # mixed widths average 2.5 digits: a list of ten 4-digit numbers would be rare
            d = r.randint(*self.digits)
            if self.name == "train":  # the wider of two draws (5-6 digits: 56% of these
                d = max(d, r.randint(*self.digits))  # lists): wide lists are the hardest to copy
            return [self.int(r, True, d=d) for _ in range(r.randint(*self.list_len))]
        return [self.int(r, True) for _ in range(r.randint(*self.list_len))]

    def items(self, r: random.Random) -> list:
        """A list for a template that takes strings as well as integers (sorted, max, min,
        reversed): with `p_str_list`, quoted digit strings of 1-12 digits (or, with
        `p_word_items`, words), which practise copying long digit runs and long lists inside
        a list without an integer list wider or longer than training's."""
        if not (self.p_str_list and r.random() < self.p_str_list):
            return self.ints(r)
        if self.p_word_items and r.random() < self.p_word_items:
            return [self.word(r) for _ in range(r.randint(*self.str_list_len))]
        width = r.randint(1, 12) if r.random() < 0.5 else None
        n, out = r.randint(*self.str_list_len), []
        while len(out) < n:
            s = "".join(r.choice("0123456789") for _ in range(width or r.randint(1, 12)))
            if not is_heldout_word(s):
                out.append(s)
        return out


# The first variety stage (the committed nano-codegen recipe's stage 2).
VARIETY = CodeDist("variety", "vocab_or_any", (2, 12), (3, 8), (1, 2), 0.0)
# Broadened training: half random words of 1-12 letters (never held out), lists of 2-10
# integers of 1-6 digits (some negative; half the lists of one width, the wider of two
# draws), scalars and power bases of 1-6 digits.
CODE_TRAIN = CodeDist("train", "train", (1, 12), (2, 10), (1, 6), 0.15, p_same_width=0.5)
# The copy stage: broadened training, and 30% of the lists of the templates that take strings
# made of quoted digit strings.
CODE_COPY = CodeDist("train", "train", (1, 12), (2, 10), (1, 6), 0.15, p_same_width=0.5,
                     p_str_list=0.3)
# The long-copy stage: as the copy stage, its string lists 2-16 long, a third of them words.
CODE_COPY_LONG = CodeDist("train", "train", (1, 12), (2, 10), (1, 6), 0.15, p_same_width=0.5,
                          p_str_list=0.3, str_list_len=(2, 16), p_word_items=1 / 3)
# The generalisation split: held-out words; lists of 11-14 integers (of 1-7 digits) or of
# 7-digit integers; 7-digit scalars (as nano-react's split: one digit past training).
CODE_HELDOUT = CodeDist("heldout", "heldout", (2, 12), (3, 10), (7, 7), 0.15, p_long=0.5)
# the training varieties drawn from the broadened distribution (half of validation from it)
BROADENED = ("wide", "copy", "copy-long", "space")
DISTS = {"words": VARIETY, "wide": CODE_TRAIN, "copy": CODE_COPY, "copy-long": CODE_COPY_LONG,
         "heldout": CODE_HELDOUT}


# The whole declared input space (issue 34): words of 1-20 letters in any case with repeated
# letters, lists of 2-20 integers of 1-8 digits (negatives), counts (repeat times) up to 6.
# `--variety space` trains on its `train` side; reference/space_eval.py builds generalisation
# sets from its `heldout` side. The frozen sets keep None / CODE_HELDOUT, byte-identically.
CODE_SPACE = Space("train", vocabulary=tuple(WORDS))
DISTS["space"] = CODE_SPACE
# What each template's inputs are (the dimensions space_eval forces), and the bounds episodes
# impose: a list's text is at most MAX_LIST_CHARS (it is copied into each of 3 attempts inside
# a 1024-token context); sum_range's bound has at most SUM_RANGE_DIGITS digits (the sandbox
# runs the range: 10**8 additions would take seconds), so it has no 8-digit input.
TEMPLATE_INPUTS = {
    "sum_list": {"lists", "numbers"},
    "reverse_string": {"words", "strings"},
    "length": {"words", "strings"},
    "power": {"numbers"},
    "sorted_list": {"lists", "numbers"},
    "max_list": {"lists", "numbers"},
    "min_list": {"lists", "numbers"},
    "repeat": {"words", "counts"},
    "range_list": {"numbers", "lists"},
    "upper": {"words", "strings"},
    "count_char": {"words"},
    "sum_range": {"small_numbers"},
    "reverse_list": {"lists", "numbers"},
}
MAX_LIST_CHARS = 160
SUM_RANGE_DIGITS = 6


def _space_ints(rng: random.Random, d: Space) -> list[int]:
    """A list of the space within MAX_LIST_CHARS (redrawn until it fits)."""
    while True:
        xs = d.ints(rng)
        if len(str(xs)) <= MAX_LIST_CHARS:
            return xs


def _dist(variety) -> CodeDist | Space | None:
    """`variety` as given to `generate`: False/'' (frozen set), True/'words', 'wide', 'heldout',
    'space', or a Space."""
    if isinstance(variety, Space):
        return variety
    if variety is True:
        return VARIETY
    return DISTS[variety] if variety else None


def _ints(rng, lo=1, hi=30, n=None, d: CodeDist | None = None):
    if isinstance(d, Space):
        return _space_ints(rng, d)
    if d is not None and d.name != "variety":
        return d.ints(rng)
    return [rng.randint(lo, hi) for _ in range(n or rng.randint(3, 8))]


def _items(rng, lo=1, hi=30, d: CodeDist | None = None):
    """`_ints` for a template whose list may hold strings too (the copy stage's digit strings)."""
    if d is not None and not isinstance(d, Space) and d.p_str_list:
        return d.items(rng)
    return _ints(rng, lo, hi, d=d)


def _tpl(rng: random.Random, variety=False, templates: list[str] | None = None):
    """(template, prompt, oracle program) for one random task."""
    name = rng.choice(sorted(templates or TEMPLATES))
    return (name, *TEMPLATES[name](rng, _dist(variety)))


def _text(r: random.Random, d: CodeDist | Space | None) -> str:
    """A quoted string: a word, or with the declared space any string of it (up to 60
    characters, several words)."""
    return d.phrase(r) if isinstance(d, Space) else _word(r, d)


def _word(r: random.Random, d: CodeDist | None) -> str:
    """A word of the vocabulary; with training variety, half the time a random lowercase
    string instead, so the model learns to copy any word, not only the ones it has seen
    (the seed's 'benchmark' is in no vocabulary)."""
    if d is not None:
        return d.word(r)
    return r.choice(WORDS)


def _scalar(r: random.Random, d: CodeDist | None, lo: int, hi: int) -> int:
    """An integer argument: the frozen range, or the distribution's digits (at least lo)."""
    if d is None or d.name == "variety":
        return r.randint(lo, hi)
    return max(lo, d.int(r))


def _range_list(r, d):
    v = d is not None
    if isinstance(d, Space):  # both ends are values of the prompt: both on the space's side
        while True:
            a, n = _scalar(r, d, 0, 20), r.randint(*d.list_len)
            b = a + n - 1
            if len(str(b)) < 3 or is_heldout_number(str(b)) == (d.name == "heldout"):
                break
    else:
        a, n = _scalar(r, d, 0, 20), r.randint(2, 12)
        b = a + n - 1
    # with training variety the oracle needs no arithmetic: range(a, b + 1), not range(a, b+1)
    return (f"Return a list of the numbers from {a} to {b}",
            f"result = list(range({a}, {b} + 1))" if v else f"result = list(range({a}, {a + n}))")


def _sum_range(r, d):
    v = d is not None
    if isinstance(d, Space):
        lo, hi = d.digits
        n = max(3, d.int(r, digits=(min(lo, SUM_RANGE_DIGITS), min(hi, SUM_RANGE_DIGITS))))
    else:
        n = _scalar(r, d, 3, 50)
    return (f"Return the sum of the numbers from 1 to {n}",
            f"result = sum(range(1, {n} + 1))" if v else f"result = sum(range(1, {n + 1}))")


def _count_char(r, d):
    w = _word(r, d)
    c = r.choice(w)
    return f"Count the letter '{c}' in '{w}'", f"result = '{w}'.count('{c}')"


def _repeat_word(r, d):
    if isinstance(d, Space):
        return d.word(r)
    if d is None or d.name == "variety":
        return "".join(r.choice(LETTERS) for _ in range(r.randint(1, 3)))
    return d.word(r, (1, 4) if d.name == "train" else (2, 4))


def _power_base(r, d):
    # 9 ** 12 in the frozen set; wider bases (training: 1-6 digits, like every training
    # integer) keep the exponent small so outputs stay short
    if isinstance(d, Space):
        return max(2, d.int(r))
    return r.randint(2, 9) if d is None or d.name == "variety" else \
        (max(2, d.int(r)) if d.name == "train" else r.randint(1_000_000, 9_999_999))


# Each template: (rng, dist) -> (prompt, oracle). `dist` (training and the generalisation
# split) widens words and numbers and writes oracles without arithmetic; the frozen set was
# generated with None.
TEMPLATES = {
    "sum_list": lambda r, d: (
        lambda xs: (f"Return the sum of {xs}", f"result = sum({xs})"))(_ints(r, d=d)),
    "reverse_string": lambda r, d: (
        lambda w: (f"Reverse the string '{w}'", f"result = '{w}'[::-1]"))(_text(r, d)),
    "length": lambda r, d: (
        lambda w: (f"Return the length of '{w}'", f"result = len('{w}')"))(_text(r, d)),
    "power": lambda r, d: (
        lambda b, e: (f"Return {b} to the power of {e}", f"result = {b} ** {e}"))(
        _power_base(r, d), r.randint(2, 12 if d is None or d.name == "variety" else 4)),
    "sorted_list": lambda r, d: (
        lambda xs: (f"Return the sorted version of {xs}", f"result = sorted({xs})"))(
        _items(r, 0, 9, d=d)),
    "max_list": lambda r, d: (
        lambda xs: (f"Return the maximum of {xs}", f"result = max({xs})"))(_items(r, d=d)),
    "min_list": lambda r, d: (
        lambda xs: (f"Return the minimum of {xs}", f"result = min({xs})"))(_items(r, d=d)),
    "repeat": lambda r, d: (
        lambda w, n: (f"Repeat the string '{w}' {n} times", f"result = '{w}' * {n}"))(
        _repeat_word(r, d), d.count(r) if isinstance(d, Space) else r.randint(2, 5)),
    "range_list": _range_list,
    "upper": lambda r, d: (
        lambda w: (f"Return '{w}' in upper case", f"result = '{w}'.upper()"))(_text(r, d)),
    "count_char": _count_char,
    "sum_range": _sum_range,
    "reverse_list": lambda r, d: (
        lambda xs: (f"Reverse the list {xs}", f"result = {xs}[::-1]"))(_items(r, 0, 9, d=d)),
}


def wrong_program(rng: random.Random, oracle: str) -> str:
    """A plausible failed attempt at the oracle (it must fail verification)."""
    kind = rng.choice(["syntax", "import", "name", "builtin", "offbyone"])
    if kind == "syntax":
        return oracle.replace("(", "", 1) if "(" in oracle else oracle + " +"
    if kind == "import":
        return "import math\n" + oracle
    if kind == "name":
        return oracle.replace("result = ", "result = value + ", 1)
    if kind == "builtin":
        for a, b in (("sum(", "max("), ("max(", "min("), ("min(", "max("), ("sorted(", "list("),
                     ("len(", "str("), ("[::-1]", "[1:]"), (".upper()", ".lower()")):
            if a in oracle:
                return oracle.replace(a, b, 1)
    if "[" in oracle and "[::-1]" not in oracle:    # one element too many
        return oracle.replace("]", ", -1]" if "min(" in oracle else ", 99]", 1)
    return oracle + "\nresult = str(result) + '0'"  # an extra character in the output


_INT = re.compile(r"(?<![:\w.])-?\d+(?![\w.])")


def miscopied_program(rng: random.Random, oracle: str, prompt: str = "") -> str | None:
    """The oracle with one argument copied wrongly from the prompt, as the model miscopies
    under load (measured on the generalisation split): a digit dropped (most often the last of
    a long number), a digit doubled, a list element skipped or written twice. None when the
    oracle has no integer copied from `prompt` (any integer if no prompt is given) to
    miscopy. The verifier decides whether it fails."""
    nums = [m for m in _INT.finditer(oracle)
            if not prompt or re.search(rf"(?<!\d){re.escape(m.group())}(?!\d)", prompt)]
    if not nums:
        return None
    m = rng.choice(nums)
    a, b, text = m.start(), m.end(), m.group()
    digits = text.lstrip("-")
    sign = text[: len(text) - len(digits)]
    kind = rng.choice(["drop_last", "drop_digit", "double_digit", "skip_element",
                       "repeat_element"])
    in_list = "[" in oracle[:a] and "]" in oracle[b:]
    if kind in ("skip_element", "repeat_element") and in_list and oracle.count(",") >= 1:
        before, after = oracle[:a], oracle[b:]
        if kind == "repeat_element":
            return f"{before}{text}, {text}{after}"
        if after.startswith(", "):
            return before + after[2:]
        if before.endswith(", "):
            return before[:-2] + after
    if len(digits) >= 2 and kind in ("drop_last", "skip_element", "repeat_element"):
        return oracle[:a] + sign + digits[:-1] + oracle[b:]
    if len(digits) >= 2 and kind == "drop_digit":
        i = rng.randrange(len(digits))
        return oracle[:a] + sign + digits[:i] + digits[i + 1:] + oracle[b:]
    i = rng.randrange(len(digits))
    return oracle[:a] + sign + digits[:i + 1] + digits[i:] + oracle[b:]


def generate(seed: int, n: int, verifier, exclude=frozenset(), with_seed_tasks=False,
             prefix="code-", variety: bool | str | Space = False,
             templates: list[str] | None = None):
    """n tasks with ground truth from running the oracle through `verifier` (a Verifier);
    `variety` widens words and numbers and writes arithmetic-free oracles: True or 'words'
    (the first variety stage), 'wide' (broadened training), 'heldout' (the generalisation
    split), 'space' or a Space (the declared space); False for the frozen set's distribution.
    `templates`: draw only these (default all)."""
    rng = random.Random(seed)
    seen = set(exclude)
    out = []
    if with_seed_tasks:
        for prompt, answer, oracle, template in SEED_TASKS:
            got = verifier.execute(oracle)
            assert got.get("output") == answer, (prompt, got)
            out.append(CodeTask(f"{prefix}{len(out):05d}", template, prompt, answer, oracle))
            seen.add(prompt)
    while len(out) < n:
        template, prompt, oracle = _tpl(rng, variety, templates)
        if prompt in seen:
            continue
        seen.add(prompt)
        got = verifier.execute(oracle)
        assert got["kind"] == "ran", (oracle, got)
        out.append(CodeTask(f"{prefix}{len(out):05d}", template, prompt, got["output"], oracle))
    return out


def load_eval_set(path: Path = EVAL_PATH) -> list[CodeTask]:
    with open(path) as f:
        return [CodeTask(**json.loads(line)) for line in f if line.strip()]


def load_generalisation_set(path: Path = GEN_PATH) -> list[CodeTask]:
    return load_eval_set(path)


def generalisation_tasks(verifier) -> list[CodeTask]:
    """The generalisation split as generated (the frozen file must equal it)."""
    return generate(GEN_SEED, GEN_SIZE, verifier, prefix="code-gen-", variety="heldout")


SPACE_SEED = 20261208  # fresh generalisation sets over the declared space (reference.space_eval)


def space_tasks(dim: str, n: int, verifier=None, seed: int = SPACE_SEED) -> list[CodeTask]:
    """n tasks from the held-out side of the declared space with dimension `dim` forced
    (reference.space.DIMS), drawn evenly over the templates that have that kind of input; no
    prompt of the frozen set or of its generalisation split. Without a verifier, one sandbox
    worker is started for the ground truth."""
    if verifier is None:
        from reference.codegen.sandbox import Verifier
        with Verifier(1) as v:
            return space_tasks(dim, n, v, seed)
    need = DIM_NEEDS[dim]
    names = [k for k, kinds in TEMPLATE_INPUTS.items() if need is None or need in kinds]
    if not names:
        return []
    frozen = {t.prompt for t in load_eval_set()} | {t.prompt for t in load_generalisation_set()}
    return generate(seed, n, verifier, exclude=frozen, prefix=f"code-space-{dim}-",
                    variety=CODE_SPACE.heldout().force(dim), templates=names)


def freeze_eval_set(verifier, path: Path = EVAL_PATH, tasks=None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tasks is None:
        tasks = generate(EVAL_SEED, EVAL_SIZE, verifier, with_seed_tasks=True)
    with open(path, "w") as f:
        for t in tasks:
            f.write(json.dumps(asdict(t), sort_keys=True) + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", type=int, default=3, help="print N sample tasks")
    ap.add_argument("--freeze", action="store_true", help="rewrite the frozen evaluation set")
    ap.add_argument("--freeze-generalisation", action="store_true",
                    help="rewrite the frozen generalisation split")
    args = ap.parse_args()
    from reference.codegen.sandbox import Verifier
    with Verifier(1) as v:
        if args.freeze:
            print(freeze_eval_set(v))
        if args.freeze_generalisation:
            print(freeze_eval_set(v, GEN_PATH, generalisation_tasks(v)))
        for t in generate(1, args.show, v):
            print(f"{t.prompt!r} -> {t.answer!r}   oracle: {t.oracle}")


if __name__ == "__main__":
    main()
