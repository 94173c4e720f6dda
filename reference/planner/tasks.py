"""Seeded multi-step requests for nano-planner, with oracle plans run through the real tools.

    python -m reference.planner.tasks --show 2        # sample oracle trajectories
    python -m reference.planner.tasks --freeze        # rewrite both frozen files (don't)
    python -m reference.planner.tasks --check         # regenerate and compare with the files

A task is a request, its ground-truth answer and the oracle plan: 3 to 8 tool calls over the
four tools of `reference.tools`, each written as a planner step `{"thought", "task", "tool"}`
whose informal `task` text goes through the executor (reference/planner/executor.py) to an
exact call, so every oracle step is also a test of the executor. The answer is the last call's
observation; ground truth is never hand-written. Some requests need a decision from the
observations (the two longest of three or four words), not only copying.

The frozen evaluation set (`data/eval.jsonl`, EVAL_SIZE tasks) draws words from nano-react's
vocabulary and random strings that are never held out, operands of 1-3 digits; the
generalisation split (`data/generalisation.jsonl`) uses only held-out random strings
(`reference.react.tasks.is_heldout_word`, so training provably never sees them) and operands of
5-6 digits. Each file's SHA-256 is in its `.sha256` file and in EVAL_SHA256 / GEN_SHA256 below
(for rules.yaml). Training requests never equal a frozen request.

Training trajectories are (role, text) segments for `reference.sft.build_sft_labels`: the
request is `prompt`, each JSON step `agent`, each executor result `observation`; an optional
error-recovery detour (a bad task and its `Error: bad task: ...` result, then the right step)
is `agent_masked`.

Limits: requests are English templates (11 of them) over a fixed vocabulary; the generator
makes tasks varied and exactly checkable, not hard. The codegen verifier as a fifth tool is
not used yet.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reference.planner.executor import execute
from reference.planner.schema import dump_step
from reference.react.tasks import CONSTANTS, CMP_Q, WORDS, Dist, Trajectory
from reference.space import DIM_NEEDS, Space

DATA_DIR = Path(__file__).parent / "data"
EVAL_PATH = DATA_DIR / "eval.jsonl"
GEN_PATH = DATA_DIR / "generalisation.jsonl"
EVAL_SEED = 20261214
EVAL_SIZE = 600
GEN_SEED = 20261215
GEN_SIZE = 500
VAL_SEED = 14
TRAIN_SEED = 1
# Printed by `--freeze`, checked by tests/planner/test_tasks.py; rules.yaml takes them.
EVAL_SHA256 = "41e388c53f253a6354988d0465fc7ed058be1cc336c232c3e5774d1b36ddb70e"
GEN_SHA256 = "675b5137355cfe12c20b6edeea3ae8d2e325683cd9713e5f52e9ac3ddd3e97b9"

REQUEST = "Request: "
RESULT = "Result: "
MIN_CALLS, MAX_CALLS = 3, 8

# The frozen set's and training's words and numbers: vocabulary words or random strings that
# are never held out, 1-2 words a phrase, operands of 1-3 digits, a few negatives and decimals.
BASE_DIST = Dist("train", p_random_word=0.3, word_len=(2, 10), max_words=2, digits=(1, 3),
                 p_negative=0.1, p_decimal=0.1)
# The generalisation split: held-out random strings only, operands of 5-6 digits.
HELDOUT_DIST = Dist("heldout", p_random_word=1.0, word_len=(2, 10), max_words=2, digits=(5, 6),
                    p_negative=0.1, p_decimal=0.1)


@dataclass(frozen=True)
class OracleCall:
    tool: str
    input: str
    observation: str


@dataclass(frozen=True)
class Task:
    id: str
    template: str
    request: str
    answer: str
    n_calls: int
    oracle: tuple[OracleCall, ...] = field(default_factory=tuple)

    @property
    def question(self) -> str:
        """The request, under the name traces and the harness use for every workload."""
        return self.request

    def to_json(self) -> str:
        d = asdict(self)
        d["oracle"] = [[c.tool, c.input, c.observation] for c in self.oracle]
        return json.dumps(d, sort_keys=True)

    @staticmethod
    def from_json(line: str) -> "Task":
        d = json.loads(line)
        d["oracle"] = tuple(OracleCall(*c) for c in d["oracle"])
        return Task(**d)


def request_line(request: str) -> str:
    return f"{REQUEST}{request}\n"


def result_line(observation: str) -> str:
    """What the environment appends after a planner step: it ends the JSON line, then one
    `Result:` line (newlines inside an observation would forge planner text)."""
    return f"\n{RESULT}{observation.replace(chr(10), ' ')}\n"


# ---------------------------------------------------------------------------------------------
# templates: (rng, dist) -> (request, plan); a plan step is (thought, tool, task) where task is
# a string or a function of the observations so far. Quoted phrases never contain a quote.

def _q(items: list[str]) -> str:
    """'a', 'b' and 'c'"""
    quoted = [f"'{s}'" for s in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _add(nums: list[str]) -> str:
    return f"Add {', '.join(nums[:-1])} and {nums[-1]}"


def _len_step(rng, s: str, which: str = "the string"):
    form = rng.choice(["Count the characters in", "Find the length of"])
    return (f"I need the length of {which}.", "string_length", f"{form} '{s}'")


def _lookup_step(rng, c: str):
    form = rng.choice(["Look up the value of", "Look up"])
    return (f"I need the value of {c}.", "lookup", f"{form} {c}")


def _tpl_length_const_plus(rng, d):
    s, c, n = d.phrase(rng), rng.choice(CONSTANTS), d.number(rng)
    return (f"What is the length of '{s}' times {c}, plus {n}?",
            [_len_step(rng, s), _lookup_step(rng, c),
             ("Now compute the result.", "calculator",
              lambda o: f"Compute {o[0]} * {o[1]} + {_paren(n)}")])


def _tpl_scaled_const_vs_number(rng, d):
    c, n, m = rng.choice(CONSTANTS), d.number(rng, nonzero=True), d.number(rng)
    return (f"Is {c} times {n} {CMP_Q} {m}?",
            [_lookup_step(rng, c),
             ("Now scale it.", "calculator", lambda o: f"Multiply {o[0]} by {n}"),
             ("Now compare the two values.", "compare", lambda o: f"Compare {o[1]} with {m}")])


def _tpl_consts_sum_times(rng, d):
    c1, c2 = rng.sample(CONSTANTS, 2)
    n = d.number(rng, nonzero=True)
    return (f"What is {c1} plus {c2}, times {n}?",
            [_lookup_step(rng, c1), _lookup_step(rng, c2),
             ("Now add them.", "calculator", lambda o: _add(o[:2])),
             ("Now scale the sum.", "calculator", lambda o: f"Multiply {o[2]} by {n}")])


def _tpl_length_diff_arith(rng, d):
    s1, s2, n, m = d.phrase(rng), d.phrase(rng), d.number(rng), d.number(rng)
    return (f"What is the length of '{s1}' minus the length of '{s2}', times {n} plus {m}?",
            [_len_step(rng, s1, "the first string"), _len_step(rng, s2, "the second string"),
             ("Now subtract.", "calculator", lambda o: f"Subtract {o[1]} from {o[0]}"),
             ("Now compute the result.", "calculator",
              lambda o: f"Compute {_paren(o[2])} * {_paren(n)} + {_paren(m)}")])


def _tpl_average_length(rng, d):
    k = rng.randint(2, 4) if d.space is None else d.space.count(rng, 2, 6)  # k + 2 calls <= 8
    ss = [d.phrase(rng, k) for _ in range(k)]
    return (f"What is the average length of {_q(ss)}?",
            [_len_step(rng, s, f"string {i + 1}") for i, s in enumerate(ss)] +
            [("Now add the lengths.", "calculator", lambda o: _add(o[:k])),
             ("Now divide by the count.", "calculator", lambda o: f"Divide {o[k]} by {k}")])


def _tpl_scaled_const_vs_const_plus(rng, d):
    c1, c2 = rng.sample(CONSTANTS, 2)
    n, m = d.number(rng, nonzero=True), d.number(rng)
    return (f"Is {c1} times {n} {CMP_Q} {c2} plus {m}?",
            [_lookup_step(rng, c1),
             ("Now scale it.", "calculator", lambda o: f"Multiply {o[0]} by {n}"),
             _lookup_step(rng, c2),
             ("Now add to it.", "calculator", lambda o: _add([o[2], m])),
             ("Now compare the two values.", "compare", lambda o: f"Compare {o[1]} with {o[3]}")])


def _tpl_two_longest_times_const(rng, d):
    k = rng.randint(3, 4) if d.space is None else d.space.count(rng, 3, 5)  # k + 3 calls <= 8
    ws = [d.word(rng) for _ in range(k)]
    c = rng.choice(CONSTANTS)

    def two_longest(o):  # the two largest lengths, in the order they were measured
        top = sorted(range(k), key=lambda i: (-int(o[i]), i))[:2]
        return _add([o[i] for i in sorted(top)])
    return (f"How many letters do the two longest of {_q(ws)} have together, times {c}?",
            [_len_step(rng, w, f"word {i + 1}") for i, w in enumerate(ws)] +
            [("Now add the two largest lengths.", "calculator", two_longest),
             _lookup_step(rng, c),
             ("Now multiply.", "calculator", lambda o: f"Multiply {o[k]} by {o[k + 1]}")])


def _tpl_sum_lengths_vs_scaled_const(rng, d):
    s1, s2, c, n = d.phrase(rng), d.phrase(rng), rng.choice(CONSTANTS), d.number(rng, nonzero=True)
    return (f"Is the length of '{s1}' plus the length of '{s2}' {CMP_Q} {c} times {n}?",
            [_len_step(rng, s1, "the first string"), _len_step(rng, s2, "the second string"),
             ("Now add the lengths.", "calculator", lambda o: _add(o[:2])),
             _lookup_step(rng, c),
             ("Now scale it.", "calculator", lambda o: f"Multiply {o[3]} by {n}"),
             ("Now compare the two values.", "compare", lambda o: f"Compare {o[2]} with {o[4]}")])


def _tpl_consts_sum_times_length(rng, d):
    cs = rng.sample(CONSTANTS, 3)
    s = d.phrase(rng)
    return (f"What is {cs[0]} plus {cs[1]} plus {cs[2]}, times the length of '{s}'?",
            [_lookup_step(rng, c) for c in cs] +
            [("Now add the three values.", "calculator", lambda o: _add(o[:3])),
             _len_step(rng, s),
             ("Now multiply.", "calculator", lambda o: f"Multiply {o[3]} by {o[4]}")])


def _tpl_scaled_lengths_compare(rng, d):
    s1, s2 = d.phrase(rng), d.phrase(rng)
    c1, c2 = rng.sample(CONSTANTS, 2)
    return (f"Is the length of '{s1}' times {c1} {CMP_Q} the length of '{s2}' times {c2}?",
            [_len_step(rng, s1, "the first string"), _lookup_step(rng, c1),
             ("Now multiply.", "calculator", lambda o: f"Multiply {o[0]} by {o[1]}"),
             _len_step(rng, s2, "the second string"), _lookup_step(rng, c2),
             ("Now multiply.", "calculator", lambda o: f"Multiply {o[3]} by {o[4]}"),
             ("Now compare the two values.", "compare", lambda o: f"Compare {o[2]} with {o[5]}")])


def _tpl_total_lengths_compare(rng, d):
    k1, k2 = rng.choice([(2, 2), (2, 3), (3, 2)])
    g1, g2 = [d.word(rng) for _ in range(k1)], [d.word(rng) for _ in range(k2)]
    return (f"Is the total length of {_q(g1)} {CMP_Q} the total length of {_q(g2)}?",
            [_len_step(rng, w, f"word {i + 1}") for i, w in enumerate(g1)] +
            [("Now add the first group.", "calculator", lambda o: _add(o[:k1]))] +
            [_len_step(rng, w, f"word {k1 + i + 1}") for i, w in enumerate(g2)] +
            [("Now add the second group.", "calculator", lambda o: _add(o[k1 + 1:k1 + 1 + k2])),
             ("Now compare the two totals.", "compare",
              lambda o: f"Compare {o[k1]} with {o[k1 + k2 + 1]}")])


def _paren(num) -> str:
    s = str(num)
    return f"({s})" if s.startswith("-") else s


TEMPLATES = {
    "length_const_plus": _tpl_length_const_plus,                  # 3 calls
    "scaled_const_vs_number": _tpl_scaled_const_vs_number,        # 3
    "consts_sum_times": _tpl_consts_sum_times,                    # 4
    "length_diff_arith": _tpl_length_diff_arith,                  # 4
    "average_length": _tpl_average_length,                        # 4-6
    "scaled_const_vs_const_plus": _tpl_scaled_const_vs_const_plus,  # 5
    "two_longest_times_const": _tpl_two_longest_times_const,      # 6-7
    "sum_lengths_vs_scaled_const": _tpl_sum_lengths_vs_scaled_const,  # 6
    "consts_sum_times_length": _tpl_consts_sum_times_length,      # 6
    "scaled_lengths_compare": _tpl_scaled_lengths_compare,        # 7
    "total_lengths_compare": _tpl_total_lengths_compare,          # 7-8
}


class _Words:
    """A Dist with the phrase helper the templates use (1..max_words words); or a Space (the
    whole declared space), whose quoted strings a template bounds by how many it quotes."""

    def __init__(self, dist: Dist | Space):
        self.dist = dist
        self.space = dist if isinstance(dist, Space) else None

    def word(self, rng) -> str:
        return self.dist.word(rng)

    def phrase(self, rng, k: int = 2) -> str:
        """A quoted string; with the space, of at most its share (k strings) of
        MAX_QUOTED_CHARS."""
        if self.space is not None:
            return self.space.phrase(rng, MAX_QUOTED_CHARS // max(2, k))
        return " ".join(self.dist.word(rng) for _ in range(rng.randint(1, self.dist.max_words)))

    def number(self, rng, nonzero: bool = False) -> str:
        while True:
            n = self.dist.number(rng, nonzero=nonzero)
            if not nonzero or float(n) != 0:
                return n


# The whole declared input space (issue 34): words of 1-20 letters in any case with repeated
# letters, quoted strings up to 60 characters, counts up to 6 where a template counts (2-6
# strings averaged; 3-5 words for the two longest: k + 3 calls within MAX_CALLS), operands of
# 1-8 digits, negatives and decimals. `--space full` trains on its `train` side (its share is
# --broad); reference/space_eval.py builds generalisation sets from its `heldout` side. The
# frozen sets keep BASE_DIST / HELDOUT_DIST, byte-identically.
PLANNER_SPACE = Space("train", vocabulary=tuple(WORDS))
# A template's quoted strings total at most MAX_QUOTED_CHARS (each is copied into the request,
# a step's task and its thought-free JSON: the longest trajectory stays inside the 1280-token
# context; tests/test_space.py checks it).
MAX_QUOTED_CHARS = 120
TEMPLATE_INPUTS = {
    "length_const_plus": {"words", "strings", "numbers"},
    "scaled_const_vs_number": {"numbers"},
    "consts_sum_times": {"numbers"},
    "length_diff_arith": {"words", "strings", "numbers"},
    "average_length": {"words", "strings", "counts"},
    "scaled_const_vs_const_plus": {"numbers"},
    "two_longest_times_const": {"words", "counts"},
    "sum_lengths_vs_scaled_const": {"words", "strings", "numbers"},
    "consts_sum_times_length": {"words", "strings"},
    "scaled_lengths_compare": {"words", "strings"},
    "total_lengths_compare": {"words"},
}


# ---------------------------------------------------------------------------------------------
# the oracle

def _bad_step(rng: random.Random, tool: str, task: str) -> tuple[str, str]:
    """A plausible wrong (tool, task) for an error-recovery detour; it must be a bad task."""
    others = [t for t in ("calculator", "string_length", "lookup", "compare") if t != tool]
    if rng.random() < 0.5:
        return rng.choice(others), task  # the right task sent to the wrong tool
    return tool, rng.choice(["Do the next step", "Use the previous result",
                             task.split(" ")[0] + " it", "Find the answer"])


def solve(task_id: str, template: str, request: str, plan, rng: random.Random | None = None,
          p_detour: float = 0.0) -> Trajectory:
    """Run the oracle plan through the executor and the real tools."""
    segs: list[tuple[str, str]] = [("prompt", request_line(request))]
    obs: list[str] = []
    calls: list[OracleCall] = []
    detour_at = rng.randrange(len(plan)) if rng is not None and rng.random() < p_detour else -1
    for i, (thought, tool, task) in enumerate(plan):
        task_text = task(obs) if callable(task) else task
        if i == detour_at:
            bad_tool, bad_task = _bad_step(rng, tool, task_text)
            bad = execute(bad_tool, bad_task)
            assert bad.status == "bad_task", (bad_tool, bad_task, bad)
            segs.append(("agent_masked", dump_step({"thought": thought, "task": bad_task,
                                                    "tool": bad_tool})))
            segs.append(("observation", result_line(bad.observation)))
            thought = "That failed. " + thought
        out = execute(tool, task_text)
        assert out.status == "ok", (request, tool, task_text, out)
        segs.append(("agent", dump_step({"thought": thought, "task": task_text, "tool": tool})))
        segs.append(("observation", result_line(out.observation)))
        obs.append(out.observation)
        calls.append(OracleCall(out.call.tool, out.call.input, out.observation))
    answer = obs[-1]
    segs.append(("agent", dump_step({"final_answer": answer})))
    assert MIN_CALLS <= len(calls) <= MAX_CALLS, (template, len(calls))
    return Trajectory(Task(task_id, template, request, answer, len(calls), tuple(calls)), segs)


def parse_mix(spec: str) -> dict[str, float]:
    """A training mix `name=weight,...` (templates not named keep weight 1)."""
    weights = {name: 1.0 for name in TEMPLATES}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, w = part.partition("=")
        if not sep or name not in TEMPLATES:
            raise ValueError(f"bad mix entry {part!r}: expected NAME=WEIGHT, NAME one of "
                             f"{', '.join(sorted(TEMPLATES))}")
        weights[name] = float(w)
        if not weights[name] >= 0:
            raise ValueError(f"bad mix weight in {part!r}: must be >= 0")
    if sum(weights.values()) <= 0:
        raise ValueError("the mix gives every template weight 0")
    return weights


def generate(seed: int, n: int, exclude: set[str] = frozenset(), prefix: str = "t",
             p_detour: float = 0.0, dist: Dist | Space = BASE_DIST, unique: bool = True,
             templates: list[str] | None = None, mix: dict[str, float] | None = None,
             broad: float = 0.0, broad_dist: Space = PLANNER_SPACE):
    """Yield n oracle trajectories, requests not in `exclude`; templates drawn uniformly, or
    by the weights of `mix` (training only: the frozen sets are drawn uniformly). With `broad`
    > 0 that share of the tasks draws from `broad_dist` (the declared space) instead."""
    rng = random.Random(seed)
    words = _Words(dist)
    broad_words = _Words(broad_dist)
    names = sorted(templates or TEMPLATES)
    weights = None if mix is None else [mix.get(k, 1.0) for k in names]
    seen = set(exclude)
    count = 0
    while count < n:
        name = rng.choice(names) if weights is None else rng.choices(names, weights)[0]
        request, plan = TEMPLATES[name](rng, broad_words if broad and rng.random() < broad
                                         else words)
        if request in seen:
            continue
        if unique:
            seen.add(request)
        yield solve(f"{prefix}{count:05d}", name, request, plan, rng, p_detour)
        count += 1


SPACE_SEED = 20261209  # fresh generalisation sets over the declared space (reference.space_eval)


def space_tasks(dim: str, n: int, seed: int = SPACE_SEED) -> list[Task]:
    """n tasks from the held-out side of the declared space with dimension `dim` forced
    (reference.space.DIMS), drawn evenly over the templates that have that kind of input; no
    request of the frozen set or of its generalisation split."""
    need = DIM_NEEDS[dim]
    names = [k for k, kinds in TEMPLATE_INPUTS.items() if need is None or need in kinds]
    if not names:
        return []
    frozen = {t.request for t in load_eval_set()} | {t.request for t in load_generalisation_set()}
    return [t.task for t in generate(seed, n, exclude=frozen, prefix=f"planner-space-{dim}-",
                                     dist=PLANNER_SPACE.heldout().force(dim), templates=names)]


def eval_tasks() -> list[Task]:
    """The frozen evaluation set as generated (the committed file must equal it)."""
    return [t.task for t in generate(EVAL_SEED, EVAL_SIZE, prefix="planner-")]


def generalisation_tasks() -> list[Task]:
    return [t.task for t in generate(GEN_SEED, GEN_SIZE, prefix="planner-gen-",
                                     dist=HELDOUT_DIST)]


def frozen_text(tasks: list[Task]) -> str:
    return "".join(t.to_json() + "\n" for t in tasks)


def load_tasks(path: Path = EVAL_PATH) -> list[Task]:
    with open(path) as f:
        return [Task.from_json(line) for line in f if line.strip()]


def load_eval_set() -> list[Task]:
    return load_tasks(EVAL_PATH)


def load_generalisation_set() -> list[Task]:
    return load_tasks(GEN_PATH)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write(tasks: list[Task], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(frozen_text(tasks))
    digest = file_sha256(path)
    path.with_suffix(".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--freeze", action="store_true",
                    help="rewrite data/eval.jsonl and data/generalisation.jsonl")
    ap.add_argument("--check", action="store_true",
                    help="regenerate both sets and compare with the committed files")
    ap.add_argument("--show", type=int, default=0, help="print N sample training trajectories")
    args = ap.parse_args()
    if args.freeze:
        print(f"eval.jsonl            {_write(eval_tasks(), EVAL_PATH)}")
        print(f"generalisation.jsonl  {_write(generalisation_tasks(), GEN_PATH)}")
    differs = False
    if args.check:
        for path, tasks in ((EVAL_PATH, eval_tasks()), (GEN_PATH, generalisation_tasks())):
            same = path.read_text() == frozen_text(tasks)
            differs |= not same
            print(f"{path.name}: {'matches' if same else 'DIFFERS from'} the generator; "
                  f"sha256 {file_sha256(path)}")
    for traj in generate(TRAIN_SEED, args.show, p_detour=0.3):
        print(traj.text, end="\n\n")
    if differs:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
