"""Hidden-case tasks for nano-codegen: a first attempt that cannot be sure (issue 34, design in
reference/codegen/RETRY_DESIGN.md). Not used by any default: nothing imports this module
unless asked (`python -m reference.codegen.retry_tasks --show 4`), so current results do not
change.

    python -m reference.codegen.retry_tasks --show 4     # sample tasks and a scripted episode

A task states a function of `x` in words that admit two or three conventions (the middle of an
even-length list, duplicates in "the second largest", bounds in "between"), with one visible
example on which every convention agrees. The program computes `result` from `x`; the
environment runs it on the hidden cases (`x = <case>` prepended) and, at the first failing one,
answers `Feedback: Wrong output for x = <case>: <got> (expected <want>)`. The first hidden case
tells every convention of the family apart, so the feedback names the intended one and a
second attempt can always pass: pass@1 is about P_DEFAULT (the share of tasks whose
convention is the family's most common one) and pass within 3 attempts near 1.

Limits: five families; hidden cases are checked one sandbox run each (3-4 per attempt); the
environment, the trainer and the checker do not use it yet (RETRY_DESIGN.md says how).
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from reference.space import Space

P_DEFAULT = 0.65  # share of tasks whose convention is variant 0 (the learnable prior)


@dataclass(frozen=True)
class HiddenCaseTask:
    id: str
    family: str
    variant: int            # which convention of the family is intended
    prompt: str             # the statement and one visible example
    cases: tuple[str, ...]  # hidden inputs, as Python literals bound to x
    answers: tuple[str, ...]  # str(result) expected for each hidden case
    oracle: str             # a program of the intended convention

    @property
    def question(self) -> str:
        return self.prompt


# A family: statement, variant programs over x, and case makers. `distinct(rng, sp)` draws a
# hidden input on which all variants give pairwise different results (it leads the cases);
# `agree(rng, sp)` draws the visible example, on which all agree.
def _middle_even(rng, sp):
    return sp.ints(rng, n=2 * rng.randint(1, 5))


def _middle_odd(rng, sp):
    return sp.ints(rng, n=2 * rng.randint(1, 4) + 1)


def _second_dups(rng, sp):
    xs = sp.ints(rng, n=rng.randint(3, 8))
    top = max(xs)
    return xs + [top]  # the maximum twice: 'second largest' differs by convention


def _second_plain(rng, sp):
    return rng.sample(range(-50, 99), rng.randint(3, 8))


def _between_edges(rng, sp):
    lo = rng.randint(-20, 40)
    hi = lo + rng.randint(3, 30)
    xs = sp.ints(rng, n=rng.randint(3, 8)) + [lo, hi]
    rng.shuffle(xs)
    return (xs, lo, hi)


def _between_inner(rng, sp):
    lo = rng.randint(-20, 40)
    hi = lo + rng.randint(3, 30)
    xs = [v for v in sp.ints(rng, n=rng.randint(3, 8)) if v not in (lo, hi)] or [lo - 1]
    return (xs, lo, hi)


def _words_spaced(rng, sp):
    ws = [sp.word(rng, (1, 8)) for _ in range(rng.randint(2, 5))]
    return "  ".join(ws[:2]) + (" " + " ".join(ws[2:]) if ws[2:] else "") + " "


def _words_single(rng, sp):
    return " ".join(sp.word(rng, (1, 8)) for _ in range(rng.randint(1, 5)))


def _avg_uneven(rng, sp):
    while True:
        xs = sp.ints(rng, n=rng.randint(2, 6))
        if sum(xs) >= 0 and 2 * (sum(xs) % len(xs)) > len(xs):  # rounds up, floors down
            return xs


def _avg_even(rng, sp):
    while True:
        xs = sp.ints(rng, n=rng.randint(2, 6))
        if sum(xs) % len(xs) == 0:
            return xs


FAMILIES = {
    "middle": ("Return the middle element of x",
               ["result = x[(len(x) - 1) // 2]", "result = x[len(x) // 2]"],
               _middle_even, _middle_odd),
    "second_largest": ("Return the second largest number in x",
                       ["result = sorted(x)[-2]", "result = sorted(set(x))[-2]"],
                       _second_dups, _second_plain),
    "count_between": ("Count the numbers in x[0] that lie between x[1] and x[2]",
                      ["result = len([v for v in x[0] if x[1] <= v <= x[2]])",
                       "result = len([v for v in x[0] if x[1] < v < x[2]])",
                       "result = len([v for v in x[0] if x[1] <= v < x[2]])"],
                      _between_edges, _between_inner),
    "count_words": ("Count the words in x",
                    ["result = len(x.split())", "result = x.count(' ') + 1"],
                    _words_spaced, _words_single),
    "average": ("Return the average of x as a whole number",
                ["result = sum(x) // len(x)", "result = round(sum(x) / len(x))"],
                _avg_uneven, _avg_even),
}


def _distinct(results: list[str]) -> bool:
    return len(set(results)) == len(results)


def run_variant(verifier, program: str, case: str) -> str | None:
    """str(result) of `program` with x bound to `case` (None if it did not run)."""
    out = verifier.execute(f"x = {case}\n{program}")
    return out.get("output") if out.get("kind") == "ran" else None


def check(verifier, task: HiddenCaseTask, program: str):
    """Run `program` on the hidden cases: (passed, feedback). The feedback names the first
    failing case with what it returned and what was expected (the verifier's own text when the
    program does not run at all)."""
    for case, want in zip(task.cases, task.answers):
        verdict = verifier.verify(f"x = {case}\n{program}", want)
        if verdict.ok:
            continue
        if verdict.kind == "wrong_output":
            return False, f"Wrong output for x = {case}: {verdict.output} (expected {want})"
        return False, verdict.feedback
    return True, "Output: correct on every hidden case"


def generate(seed: int, n: int, verifier, space: Space | None = None,
             p_default: float = P_DEFAULT, n_hidden: int = 3, prefix: str = "retry-"):
    """n hidden-case tasks, families drawn uniformly; variant 0 with probability p_default."""
    rng = random.Random(seed)
    sp = space or Space("train", word_len=(1, 8), digits=(1, 2), p_negative=0.2)
    out = []
    while len(out) < n:
        family = rng.choice(sorted(FAMILIES))
        statement, programs, distinct, agree = FAMILIES[family]
        variant = 0 if rng.random() < p_default else rng.randrange(1, len(programs))
        example = repr(agree(rng, sp))
        ex = [run_variant(verifier, p, example) for p in programs]
        lead = repr(distinct(rng, sp))
        lead_out = [run_variant(verifier, p, lead) for p in programs]
        if None in ex or len(set(ex)) != 1 or None in lead_out or not _distinct(lead_out):
            continue  # redraw until the example agrees and the lead case separates all
        cases = [lead] + [repr(agree(rng, sp)) for _ in range(n_hidden - 1)]
        answers = [run_variant(verifier, programs[variant], c) for c in cases]
        if None in answers:
            continue
        prompt = f"{statement}. Example: x = {example} gives {ex[0]}"
        out.append(HiddenCaseTask(f"{prefix}{len(out):05d}", family, variant, prompt,
                                  tuple(cases), tuple(answers), programs[variant]))
    return out


def trajectory(verifier, task: HiddenCaseTask) -> list[tuple[str, str]]:
    """A training trajectory as (role, text) segments: on a non-default task the default
    program (masked) and its real feedback, then the intended program (learned)."""
    from reference.codegen.format import END, FEEDBACK, PROGRAM, TASK
    segs = [("prompt", f"{TASK}{task.prompt}\n")]
    default = FAMILIES[task.family][1][0]
    if task.variant != 0:
        ok, feedback = check(verifier, task, default)
        assert not ok, (task, feedback)
        segs += [("agent_masked", f"{PROGRAM}\n{default}\n{END}\n"),
                 ("observation", f"{FEEDBACK}{feedback}\n")]
    return segs + [("agent", f"{PROGRAM}\n{task.oracle}\n{END}\n")]


def scripted_episode(verifier, task: HiddenCaseTask, max_attempts: int = 3) -> list[str]:
    """The policy the design expects the model to learn: the family's default first, then the
    convention the feedback's (case, expected) pair singles out. Returns the feedback lines."""
    programs = FAMILIES[task.family][1]
    tried, lines, program = set(), [], programs[0]
    for _ in range(max_attempts):
        ok, fb = check(verifier, task, program)
        lines.append(fb)
        if ok:
            return lines
        tried.add(program)
        case, _, want = fb.removeprefix("Wrong output for x = ").rpartition(" (expected ")
        case, want = case.rsplit(": ", 1)[0], want.removesuffix(")")
        fits = [p for p in programs if p not in tried and run_variant(verifier, p, case) == want]
        program = fits[0] if fits else next((p for p in programs if p not in tried), program)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", type=int, default=4, help="print N sample tasks with an episode")
    ap.add_argument("--seed", type=int, default=1, help="generator seed")
    args = ap.parse_args()
    from reference.codegen.sandbox import Verifier
    with Verifier(1) as v:
        for t in generate(args.seed, args.show, v):
            print(f"{t.family}/{t.variant}: {t.prompt}\n  hidden: {list(t.cases)} -> "
                  f"{list(t.answers)}\n  episode: {scripted_episode(v, t)}")
            print("".join(text for _, text in trajectory(v, t)))


if __name__ == "__main__":
    main()
