"""Seeded task generator for nano-react, with oracle trajectories from the real tools.

    python -m reference.react.tasks --freeze    # rewrite the frozen evaluation set (don't)

A task is a question, its ground-truth answer and the oracle plan that reaches it. The oracle
runs each planned tool call through `reference.tools`, so ground truth is never hand-written.
Templates need 2 to 5 tool calls and together use all four tools. The four seed tasks are
instances of the templates and are always the first four tasks of the frozen evaluation set.

Training trajectories may carry an error-recovery detour (a wrong tool call, its `Error: ...`
observation, then the right call); the detour's agent text is marked `agent_masked` so the
model learns to recover, not to err.

Limits: questions use a fixed vocabulary of 120 words and the seed's eight constants; the
generator does not try to make tasks hard, only varied and exactly checkable.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from reference.hashing import file_sha256
from reference.react.format import (ACTION, ACTION_INPUT, FINAL_ANSWER, THOUGHT,
                                    observation_line, question_line)
from reference.space import DIM_NEEDS, Space, is_heldout_number
from reference.tools import LOOKUP_TABLE, run_tool

DATA_DIR = Path(__file__).parent / "data"
EVAL_PATH = DATA_DIR / "eval.jsonl"
EVAL_SEED = 20261121
EVAL_SIZE = 1000
VAL_SEED = 7
TRAIN_SEED = 1
# The generalisation split: held-out words and 7-digit operands (HELDOUT_DIST below), every
# template that has a word or a number to widen (const_op_const has neither).
GEN_PATH = DATA_DIR / "generalisation.jsonl"
GEN_SEED = 20261201
GEN_SIZE = 600

# The seed tasks, verbatim, with the answers the seed expects.
SEED_TASKS = [
    ("What is the length of 'hello world' times 10 plus 20?", "130"),
    ("Is pi greater than, less than or equal to e?", "greater"),
    ("What is pi times 2?", "6.28318"),
    ("Is sqrt2 greater than, less than or equal to golden_ratio?", "less"),
]

WORDS = """apple river stone cloud tiger maple orange silver garden planet rocket window
candle forest bridge castle dragon engine falcon harbor island jungle kettle lemon meadow
needle ocean pepper quartz rabbit saddle tunnel violet walrus yellow zebra anchor basket
copper desert feather glacier hammer iceberg jacket kitten ladder magnet napkin oyster pillow
quiver ribbon spider teapot umbrella valley wagon yogurt blue red green gray black white
agent loop token cache model batch query thread kernel vector tensor matrix signal packet
router socket buffer stack queue graph node edge path tree leaf root seed bloom frost ember
storm wave tide dune cliff peak mesa reef delta lake pond brook creek fjord bay cove gulf
hello world code data time fast slow""".split()
CONSTANTS = list(LOOKUP_TABLE)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
OPS = {"plus": "+", "minus": "-", "times": "*", "divided by": "/"}
CMP_Q = "greater than, less than or equal to"
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth"]


@dataclass(frozen=True)
class Task:
    id: str
    template: str
    question: str
    answer: str
    n_tool_calls: int


@dataclass
class Trajectory:
    """A task solved by the oracle, as (role, text) segments that concatenate to the text.

    Roles: `prompt` (question), `agent` (learned), `observation` (environment),
    `agent_masked` (agent text of an error-recovery detour: not learned). nano-planner's
    trajectories are the same shape around its own Task."""
    task: Task
    segments: list[tuple[str, str]]

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.segments)


def is_heldout_word(word: str) -> bool:
    """True for the words reserved for the generalisation split (about 1 in 8 strings).

    The split is a fixed partition of all strings by their SHA-256: the training sampler
    rejects every held-out random string, and the generalisation split uses only held-out
    strings outside the vocabulary, so training provably never sees a generalisation word
    (tests/react/test_tasks.py). The letter distribution is the same on both sides: what is held out
    is the words, not letters the model never saw."""
    return hashlib.sha256(word.encode()).digest()[0] < 32


@dataclass(frozen=True)
class Dist:
    """Where a task's words and numbers come from (the frozen set's distribution is `None`).

    `words`: `train` draws real words or random strings that are never held out; `heldout`
    draws only held-out random strings outside the vocabulary. Numbers have a digit count in
    `digits` and may be negative or carry one or two decimals where the template allows."""
    name: str
    p_random_word: float       # share of words that are random letter strings
    word_len: tuple[int, int]  # letters in a random word
    max_words: int             # words in a quoted phrase: 1..max_words
    digits: tuple[int, int]    # integer digits of an operand
    p_negative: float          # share of operands that are negative (where allowed)
    p_decimal: float           # share of operands with one or two decimals (where allowed)

    def word(self, rng: random.Random) -> str:
        if self.name == "train" and rng.random() >= self.p_random_word:
            return rng.choice(WORDS)
        while True:
            w = "".join(rng.choice(LETTERS) for _ in range(rng.randint(*self.word_len)))
            if is_heldout_word(w) == (self.name == "heldout") and w not in WORDS:
                return w

    def number(self, rng: random.Random, signed: bool = True, nonzero: bool = False) -> str:
        d = rng.randint(*self.digits)
        n = rng.randint(10 ** (d - 1) if d > 1 else (1 if nonzero else 0), 10 ** d - 1)
        text = str(n)
        if rng.random() < self.p_decimal:
            text += "." + str(rng.randint(1, 99)).rstrip("0") if rng.random() < 0.5 else \
                f".{rng.randint(1, 9)}"
        if signed and rng.random() < self.p_negative:
            text = "-" + text
        return text


# The whole declared input space (issue 34): words of 1-20 letters in any case with repeated
# letters, quoted strings up to 60 characters, 2-6 strings where a template counts them,
# operands of 1-8 digits, negatives and decimals. Training draws its `train` side with
# `--space full`; reference/space_eval.py builds generalisation sets from its `heldout` side.
# The frozen sets keep TRAIN_DIST / HELDOUT_DIST / None below, byte-identically.
SPACE = Space("train", vocabulary=tuple(WORDS))
# What each template's inputs are (the dimensions reference/space_eval.py can force), and the
# bounds its episode imposes: sum_lengths counts 2..MAX_COUNT strings (each one a tool call:
# MAX_COUNT + 2 steps within the episode's 8); quoted text totals at most MAX_QUOTED_CHARS,
# and for sum_lengths at most what keeps the trajectory inside CONTEXT_BUDGET bytes of the
# model's 1024-token context: measured, its text is 138 + 128 k bytes with 1-character strings
# and each quoted character appears twice (question, Action Input), so 6 strings leave about
# 7 characters each (tests/test_space.py checks the bound). A longer context (rotary
# positions: no weight depends on it) would widen this; the next recipe decides.
TEMPLATE_INPUTS = {
    "const_op_number": {"numbers"},
    "length_arith": {"words", "strings", "numbers"},
    "compare_consts": {"numbers"},
    "compare_lengths": {"words", "strings"},
    "sum_lengths": {"words", "strings", "counts"},
    "const_op_const": set(),
    "product_vs_number": {"numbers"},
    "length_const_vs_const": {"words", "strings"},
}
MAX_COUNT = 6
MAX_QUOTED_CHARS = 150
CONTEXT_BUDGET = 1000  # bytes of a detour-free trajectory (a detour may add about 170)


def quoted_budget(k: int) -> int:
    """Characters per string when sum_lengths sums k strings (the context bound above)."""
    return min(MAX_QUOTED_CHARS, (CONTEXT_BUDGET - 140 - 128 * k) // 2) // k

# Training: half the words random strings of 1-12 letters, operands of 1-6 digits, negatives
# and decimals; phrases of up to 4 words so quoted strings move around the context.
TRAIN_DIST = Dist("train", p_random_word=0.5, word_len=(1, 12), max_words=4, digits=(1, 6),
                  p_negative=0.15, p_decimal=0.15)
# The generalisation split: held-out words only, operands of 7 digits (wider than training).
HELDOUT_DIST = Dist("heldout", p_random_word=1.0, word_len=(2, 12), max_words=3, digits=(7, 7),
                    p_negative=0.15, p_decimal=0.15)


# A plan step: (thought, tool, input); input may be a function of the observations so far.
# Every template takes (rng, dist); with dist None it draws exactly what it drew when the
# frozen set was made (the vocabulary, 2-digit numbers), so that set regenerates identically.
def _phrase(rng: random.Random, d: Dist | Space | None = None, max_chars: int | None = None) -> str:
    if isinstance(d, Space):
        return d.phrase(rng, max_chars)
    if d is None:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
    return " ".join(d.word(rng) for _ in range(rng.randint(1, d.max_words)))


def _num(rng: random.Random, d: Dist | None, lo: int, hi: int, **kw) -> int | str:
    return rng.randint(lo, hi) if d is None else d.number(rng, **kw)


def _tpl_const_op_number(rng, d=None):
    c, op, n = rng.choice(CONSTANTS), rng.choice(list(OPS)), _num(rng, d, 2, 99, nonzero=True)
    return (f"What is {c} {op} {n}?",
            [(f"I need the value of {c}.", "lookup", c),
             ("Now compute the result.", "calculator", lambda o: f"{o[0]} {OPS[op]} {n}")])


def _tpl_length_arith(rng, d=None):
    s, a, b = _phrase(rng, d), _num(rng, d, 2, 20), _num(rng, d, 1, 99)
    return (f"What is the length of '{s}' times {a} plus {b}?",
            [("I need the length of the string.", "string_length", s),
             ("Now compute the result.", "calculator", lambda o: f"{o[0]} * {a} + {b}")])


def _tpl_compare_consts(rng, d=None):
    c1, c2 = rng.sample(CONSTANTS, 2)
    # only 56 plain pairs exist: most questions scale the first constant
    if rng.random() < (0.3 if d is None or d.name == "train" else 0.0):
        return (f"Is {c1} {CMP_Q} {c2}?",
                [(f"I need the value of {c1}.", "lookup", c1),
                 (f"I need the value of {c2}.", "lookup", c2),
                 ("Now compare the two values.", "compare", lambda o: f"{o[0]}, {o[1]}")])
    n = _num(rng, d, 2, 99)
    return (f"Is {c1} times {n} {CMP_Q} {c2}?",
            [(f"I need the value of {c1}.", "lookup", c1),
             ("Now compute the product.", "calculator", lambda o: f"{o[0]} * {n}"),
             (f"I need the value of {c2}.", "lookup", c2),
             ("Now compare the two values.", "compare", lambda o: f"{o[1]}, {o[2]}")])


def _tpl_compare_lengths(rng, d=None):
    s1, s2 = _phrase(rng, d, MAX_QUOTED_CHARS // 2), _phrase(rng, d, MAX_QUOTED_CHARS // 2)
    return (f"Is the length of '{s1}' {CMP_Q} the length of '{s2}'?",
            [("I need the length of the first string.", "string_length", s1),
             ("I need the length of the second string.", "string_length", s2),
             ("Now compare the two values.", "compare", lambda o: f"{o[0]}, {o[1]}")])


def _tpl_sum_lengths(rng, d=None, ks=(2, 2, 3)):
    if isinstance(d, Space):
        k = d.count(rng, 2, MAX_COUNT)
        ss = [_phrase(rng, d, quoted_budget(k)) for _ in range(k)]
    else:
        k = rng.choice(ks)
        ss = [_phrase(rng, d) for _ in range(k)]
    q = " plus ".join(f"the length of '{s}'" for s in ss)
    steps = [(f"I need the length of the {ORDINALS[i]} string.", "string_length", s)
             for i, s in enumerate(ss)]
    steps.append(("Now compute the result.", "calculator", lambda o: " + ".join(o[:k])))
    return f"What is {q}?", steps


def _tpl_const_op_const(rng, d=None):
    c1, c2 = rng.sample(CONSTANTS, 2)
    op = rng.choice(list(OPS))
    return (f"What is {c1} {op} {c2}?",
            [(f"I need the value of {c1}.", "lookup", c1),
             (f"I need the value of {c2}.", "lookup", c2),
             ("Now compute the result.", "calculator", lambda o: f"{o[0]} {OPS[op]} {o[1]}")])


def _tpl_product_vs_number(rng, d=None):
    a, b = _num(rng, d, 2, 99), _num(rng, d, 2, 99)
    if d is None:
        c = a * b if rng.random() < 0.1 else rng.randint(1, 9999)
    elif isinstance(d, Space):  # an equal product now and then, else as wide as the product
        c = run_tool("calculator", f"{a} * {b}")  # (only if on this side of the partition)
        if rng.random() >= 0.1 or is_heldout_number(c) != (d.name == "heldout"):
            c = d.number(rng, digits=(1, 2 * d.digits[1]))
    else:  # an equal product now and then, else a number as wide as the product
        c = run_tool("calculator", f"{a} * {b}") if rng.random() < 0.1 else \
            Dist("c", 0, (1, 1), 1, (1, 2 * d.digits[1]), d.p_negative, d.p_decimal).number(rng)
    return (f"Is {a} times {b} {CMP_Q} {c}?",
            [("I need the product first.", "calculator", f"{a} * {b}"),
             ("Now compare the two values.", "compare", lambda o: f"{o[0]}, {c}")])


def _tpl_length_const_vs_const(rng, d=None):
    s = _phrase(rng, d)
    c1, c2 = rng.sample(CONSTANTS, 2)
    return (f"Is the length of '{s}' times {c1} {CMP_Q} {c2}?",
            [("I need the length of the string.", "string_length", s),
             (f"I need the value of {c1}.", "lookup", c1),
             ("Now compute the product.", "calculator", lambda o: f"{o[0]} * {o[1]}"),
             (f"I need the value of {c2}.", "lookup", c2),
             ("Now compare the two values.", "compare", lambda o: f"{o[2]}, {o[3]}")])


TEMPLATES = {
    "const_op_number": _tpl_const_op_number,
    "length_arith": _tpl_length_arith,
    "compare_consts": _tpl_compare_consts,
    "compare_lengths": _tpl_compare_lengths,
    "sum_lengths": _tpl_sum_lengths,
    "const_op_const": _tpl_const_op_const,
    "product_vs_number": _tpl_product_vs_number,
    "length_const_vs_const": _tpl_length_const_vs_const,
}


# Training-only variants (never used for the frozen or validation sets): `sum_lengths3` is
# sum_lengths with three strings, so a training mix can even out the 2:1 prior that made the
# agent stop after the second length (see the model card).
TRAIN_VARIANTS = {
    "sum_lengths3": ("sum_lengths", lambda rng, d=None: _tpl_sum_lengths(rng, d, ks=(3,))),
}


def parse_mix(spec: str) -> dict[str, float]:
    """Parse a training mix `name=weight,...` (templates not named keep weight 1)."""
    weights = {name: 1.0 for name in TEMPLATES}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, w = part.partition("=")
        if not sep or (name not in TEMPLATES and name not in TRAIN_VARIANTS):
            raise ValueError(f"bad mix entry {part!r}: expected NAME=WEIGHT with NAME one of "
                             f"{', '.join(sorted(TEMPLATES) + sorted(TRAIN_VARIANTS))}")
        try:
            weights[name] = float(w)
        except ValueError:
            raise ValueError(f"bad mix weight in {part!r}: not a number") from None
        if not weights[name] >= 0:
            raise ValueError(f"bad mix weight in {part!r}: must be >= 0")
    if sum(weights.values()) <= 0:
        raise ValueError("the mix gives every template weight 0")
    return weights


def _seed_plan(question: str):
    """Rebuild a seed task's plan by asking each template for the same question shape."""
    if question.startswith("What is the length of 'hello world'"):
        return "length_arith", [
            ("I need the length of the string.", "string_length", "hello world"),
            ("Now compute the result.", "calculator", lambda o: f"{o[0]} * 10 + 20")]
    if question == "What is pi times 2?":
        return "const_op_number", [
            ("I need the value of pi.", "lookup", "pi"),
            ("Now compute the result.", "calculator", lambda o: f"{o[0]} * 2")]
    c1, c2 = question[3:-1].split(f" {CMP_Q} ")
    return "compare_consts", [
        (f"I need the value of {c1}.", "lookup", c1),
        (f"I need the value of {c2}.", "lookup", c2),
        ("Now compare the two values.", "compare", lambda o: f"{o[0]}, {o[1]}")]


def _bad_call(rng: random.Random, tool: str, tool_input: str) -> tuple[str, str]:
    """A plausible wrong call for an error-recovery detour (it must produce an Error)."""
    kind = rng.choice(["tool", "input"])
    if kind == "tool" or tool == "string_length":
        return rng.choice(["calc", "search", "length", "math", "lookup_value"]), tool_input
    if tool == "lookup":
        return tool, tool_input[:-1] + "x" if len(tool_input) > 1 else "zz"
    if tool == "calculator":
        return tool, tool_input + " *"
    return tool, tool_input.replace(",", "")  # compare without its comma


def solve(task_id: str, template: str, question: str, plan, rng: random.Random | None = None,
          p_detour: float = 0.0) -> Trajectory:
    """Run the oracle plan through the real tools; optionally add one error-recovery detour."""
    segs: list[tuple[str, str]] = [("prompt", question_line(question))]
    obs: list[str] = []
    detour_at = rng.randrange(len(plan)) if rng is not None and rng.random() < p_detour else -1
    for i, (thought, tool, inp) in enumerate(plan):
        tool_input = inp(obs) if callable(inp) else inp
        if i == detour_at:
            bad_tool, bad_input = _bad_call(rng, tool, tool_input)
            bad_obs = run_tool(bad_tool, bad_input)
            assert bad_obs.startswith("Error:"), (bad_tool, bad_input, bad_obs)
            segs.append(("agent_masked", f"{THOUGHT}{thought}\n{ACTION}{bad_tool}\n"
                                         f"{ACTION_INPUT}{bad_input}\n"))
            segs.append(("observation", observation_line(bad_obs)))
            thought = "That failed. " + thought
        result = run_tool(tool, tool_input)
        assert not result.startswith("Error:"), (question, tool, tool_input, result)
        segs.append(("agent", f"{THOUGHT}{thought}\n{ACTION}{tool}\n{ACTION_INPUT}{tool_input}\n"))
        segs.append(("observation", observation_line(result)))
        obs.append(result)
    answer = obs[-1]
    segs.append(("agent", f"{THOUGHT}I have the answer.\n{FINAL_ANSWER}{answer}\n"))
    task = Task(task_id, template, question, answer, len(plan))
    return Trajectory(task, segs)


def generate(seed: int, n: int, exclude: set[str] = frozenset(), prefix: str = "t",
             p_detour: float = 0.0, with_seed_tasks: bool = False, unique: bool = True,
             mix: dict[str, float] | None = None, dist: Dist | Space | None = None,
             broad: float = 0.0, templates: list[str] | None = None,
             broad_dist: Dist | Space = TRAIN_DIST):
    """Yield n oracle trajectories, questions not in exclude (and, with unique, not repeated).

    Templates are drawn uniformly (from `templates`, default all), or by the weights of `mix`
    (see `parse_mix`; training only: the frozen and validation sets are drawn uniformly).
    Words and numbers come from `dist` (None: the frozen set's vocabulary and ranges); with
    `broad` > 0 that share of the tasks comes from `broad_dist` instead (training and
    validation): TRAIN_DIST by default, SPACE (the whole declared space) with `--space full`."""
    rng = random.Random(seed)
    seen = set(exclude)
    count = 0
    if with_seed_tasks:
        for q, expected in SEED_TASKS:
            template, plan = _seed_plan(q)
            traj = solve(f"{prefix}{count:05d}", template, q, plan)
            assert traj.task.answer == expected, (q, traj.task.answer, expected)
            seen.add(q)
            count += 1
            yield traj
    names = sorted(templates or TEMPLATES)
    if mix is not None:
        names = sorted(mix)
        weights = [mix[k] for k in names]
    while count < n:
        name = rng.choice(names) if mix is None else rng.choices(names, weights)[0]
        if name in TRAIN_VARIANTS:
            name, tpl = TRAIN_VARIANTS[name]
        else:
            tpl = TEMPLATES[name]
        d = broad_dist if broad and rng.random() < broad else dist
        question, plan = tpl(rng, d)
        if question in seen:
            continue
        if unique:
            seen.add(question)
        yield solve(f"{prefix}{count:05d}", name, question, plan, rng, p_detour)
        count += 1


def load_eval_set(path: Path = EVAL_PATH) -> list[Task]:
    with open(path) as f:
        return [Task(**json.loads(line)) for line in f if line.strip()]


def load_generalisation_set(path: Path = GEN_PATH) -> list[Task]:
    return load_eval_set(path)


def generalisation_tasks() -> list[Task]:
    """The generalisation split as generated (the frozen file must equal it)."""
    names = [k for k in TEMPLATES if k != "const_op_const"]
    return [t.task for t in generate(GEN_SEED, GEN_SIZE, prefix="react-gen-", dist=HELDOUT_DIST,
                                     templates=names)]


SPACE_SEED = 20261207  # fresh generalisation sets over the declared space (reference.space_eval)


def space_tasks(dim: str, n: int, seed: int = SPACE_SEED) -> list[Task]:
    """n tasks from the held-out side of the declared space with dimension `dim` forced
    (reference.space.DIMS), drawn evenly over the templates that have that kind of input;
    no question of the frozen set or of its generalisation split."""
    need = DIM_NEEDS[dim]
    names = [k for k, kinds in TEMPLATE_INPUTS.items() if kinds and (need is None or need in kinds)]
    if not names:
        return []  # no template of this benchmark has that kind of input
    frozen = {t.question for t in load_eval_set()} | {t.question for t in load_generalisation_set()}
    return [t.task for t in generate(seed, n, exclude=frozen, prefix=f"react-space-{dim}-",
                                     dist=SPACE.heldout().force(dim), templates=names)]


def _write_frozen(tasks: list[Task], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for t in tasks:
            f.write(json.dumps(asdict(t), sort_keys=True) + "\n")
    digest = file_sha256(path)
    path.with_suffix(".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def freeze_eval_set(path: Path = EVAL_PATH) -> str:
    return _write_frozen([t.task for t in generate(EVAL_SEED, EVAL_SIZE, prefix="react-",
                                                   with_seed_tasks=True)], path)


def freeze_generalisation_set(path: Path = GEN_PATH) -> str:
    return _write_frozen(generalisation_tasks(), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--freeze", action="store_true", help="rewrite the frozen evaluation set")
    ap.add_argument("--freeze-generalisation", action="store_true",
                    help="rewrite the frozen generalisation split")
    ap.add_argument("--show", type=int, default=0, help="print N sample training trajectories")
    args = ap.parse_args()
    if args.freeze:
        print(freeze_eval_set())
    if args.freeze_generalisation:
        print(freeze_generalisation_set())
    for traj in generate(TRAIN_SEED, args.show, p_detour=0.3):
        print(traj.text)


if __name__ == "__main__":
    main()
