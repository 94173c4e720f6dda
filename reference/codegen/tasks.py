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
from dataclasses import asdict, dataclass
from pathlib import Path

from reference.react.tasks import WORDS

DATA_DIR = Path(__file__).parent / "data"
EVAL_PATH = DATA_DIR / "eval.jsonl"
EVAL_SEED = 20261122
EVAL_SIZE = 500
LETTERS = "abcdefghijklmnopqrstuvwxyz"

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


def _ints(rng, lo=1, hi=30, n=None):
    return [rng.randint(lo, hi) for _ in range(n or rng.randint(3, 8))]


def _tpl(rng: random.Random, variety: bool = False):
    """(template, prompt, oracle program) for one random task."""
    name = rng.choice(sorted(TEMPLATES))
    return (name, *TEMPLATES[name](rng, variety))


def _word(r: random.Random, variety: bool) -> str:
    """A word of the vocabulary; with training variety, half the time a random lowercase
    string instead, so the model learns to copy any word, not only the ones it has seen
    (the seed's 'benchmark' is in no vocabulary)."""
    if variety and r.random() < 0.5:
        return "".join(r.choice(LETTERS) for _ in range(r.randint(2, 12)))
    return r.choice(WORDS)


def _range_list(r, v):
    a, n = r.randint(0, 20), r.randint(2, 12)
    b = a + n - 1
    # with training variety the oracle needs no arithmetic: range(a, b + 1), not range(a, b+1)
    return (f"Return a list of the numbers from {a} to {b}",
            f"result = list(range({a}, {b} + 1))" if v else f"result = list(range({a}, {a + n}))")


def _sum_range(r, v):
    n = r.randint(3, 50)
    return (f"Return the sum of the numbers from 1 to {n}",
            f"result = sum(range(1, {n} + 1))" if v else f"result = sum(range(1, {n + 1}))")


def _count_char(r, v):
    w = _word(r, v)
    c = r.choice(w)
    return f"Count the letter '{c}' in '{w}'", f"result = '{w}'.count('{c}')"


# Each template: (rng, variety) -> (prompt, oracle). `variety` (training only) widens the words
# and writes oracles without arithmetic; the frozen set was generated without it.
TEMPLATES = {
    "sum_list": lambda r, v: (lambda xs: (f"Return the sum of {xs}", f"result = sum({xs})"))(_ints(r)),
    "reverse_string": lambda r, v: (lambda w: (f"Reverse the string '{w}'", f"result = '{w}'[::-1]"))(_word(r, v)),
    "length": lambda r, v: (lambda w: (f"Return the length of '{w}'", f"result = len('{w}')"))(_word(r, v)),
    "power": lambda r, v: (lambda b, e: (f"Return {b} to the power of {e}", f"result = {b} ** {e}"))(r.randint(2, 9), r.randint(2, 12)),
    "sorted_list": lambda r, v: (lambda xs: (f"Return the sorted version of {xs}", f"result = sorted({xs})"))(_ints(r, 0, 9)),
    "max_list": lambda r, v: (lambda xs: (f"Return the maximum of {xs}", f"result = max({xs})"))(_ints(r)),
    "min_list": lambda r, v: (lambda xs: (f"Return the minimum of {xs}", f"result = min({xs})"))(_ints(r)),
    "repeat": lambda r, v: (lambda w, n: (f"Repeat the string '{w}' {n} times", f"result = '{w}' * {n}"))("".join(r.choice(LETTERS) for _ in range(r.randint(1, 3))), r.randint(2, 5)),
    "range_list": _range_list,
    "upper": lambda r, v: (lambda w: (f"Return '{w}' in upper case", f"result = '{w}'.upper()"))(_word(r, v)),
    "count_char": _count_char,
    "sum_range": _sum_range,
    "reverse_list": lambda r, v: (lambda xs: (f"Reverse the list {xs}", f"result = {xs}[::-1]"))(_ints(r, 0, 9)),
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


def generate(seed: int, n: int, verifier, exclude=frozenset(), with_seed_tasks=False,
             prefix="code-", variety: bool = False):
    """n tasks with ground truth from running the oracle through `verifier` (a Verifier);
    `variety` (training only) widens words and writes arithmetic-free oracles."""
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
        template, prompt, oracle = _tpl(rng, variety)
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


def freeze_eval_set(verifier, path: Path = EVAL_PATH) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tasks = generate(EVAL_SEED, EVAL_SIZE, verifier, with_seed_tasks=True)
    with open(path, "w") as f:
        for t in tasks:
            f.write(json.dumps(asdict(t), sort_keys=True) + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (path.parent / "eval.sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", type=int, default=3, help="print N sample tasks")
    ap.add_argument("--freeze", action="store_true", help="rewrite the frozen evaluation set")
    args = ap.parse_args()
    from reference.codegen.sandbox import Verifier
    with Verifier(1) as v:
        if args.freeze:
            print(freeze_eval_set(v))
        for t in generate(1, args.show, v):
            print(f"{t.prompt!r} -> {t.answer!r}   oracle: {t.oracle}")


if __name__ == "__main__":
    main()
