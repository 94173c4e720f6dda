"""nano-codegen's training data: oracle programs, a share of them after a real failed attempt
and its verifier feedback (both masked: only the corrected program is learned), and validation
tasks solved within the attempt bound. reference.train asks for them through the registry.

Ground truth comes from the sandboxed verifier, which this context owns. `config.variety`:
'words' (random words besides the vocabulary, arithmetic-free oracles), 'wide' (also longer
lists and 1-6 digit integers, never a held-out word; half of validation from it), 'copy'
('wide' with lists of quoted digit strings) or 'copy-long' (those lists up to 16 long, some
of words); with `config.space` 'full' ('--space full'), the whole declared space (tasks.CODE_SPACE).
"""
from __future__ import annotations

import random
import sys
from contextlib import contextmanager

from reference.codegen.tasks import (BROADENED, generate, load_eval_set,
                                     load_generalisation_set)
from reference.react.tasks import VAL_SEED


class CodegenTraining:
    def __init__(self, config, verifier):
        self.config, self.verifier = config, verifier
        # `--space full`: the broadened share comes from the whole declared space (CODE_SPACE)
        self.variety = "space" if getattr(config, "space", "") == "full" else config.variety

    def eval_prompts(self) -> set[str]:
        """Every prompt of the frozen set and of its generalisation split."""
        return {t.prompt for t in load_eval_set()} | {t.prompt for t in load_generalisation_set()}

    def validation_tasks(self, n: int) -> list:
        tasks = generate(VAL_SEED, n, self.verifier, exclude=self.eval_prompts(), prefix="val-")
        if self.variety in BROADENED:  # half of validation from the broadened distribution
            half = n // 2
            tasks = tasks[:n - half] + generate(
                VAL_SEED + 1, half, self.verifier, exclude=self.eval_prompts(), prefix="valw-",
                variety="space" if self.variety == "space" else "wide")
        return tasks

    def stream(self, seed: int, exclude: set[str]):
        """Endless oracle trajectories as (role, text) segment lists."""
        from reference.codegen.agent import trajectory
        variety = self.variety
        rng = random.Random(seed + 1)
        for chunk in range(sys.maxsize):  # ground truth comes from the sandbox, in chunks
            tasks = generate(seed * 1_000_003 + chunk, 256, self.verifier, exclude=exclude,
                             variety=variety)
            if variety in BROADENED:  # a third from the frozen set's ranges (random words too)
                tasks = tasks[:170] + generate(seed * 1_000_003 + chunk + 500_000, 86,
                                               self.verifier, exclude=exclude, variety="words")
                rng.shuffle(tasks)
            for task in tasks:
                yield trajectory(task, self.verifier, rng, p_repair=self.config.p_detour,
                                 p_miscopy=self.config.miscopy)

    def solved(self, model, task) -> bool:
        from reference.codegen.agent import CodegenEnv
        from reference.episode import run_env
        return run_env(model, CodegenEnv(task, self.verifier)).stop_reason == "solved"


@contextmanager
def codegen_training(config):
    from reference.codegen.sandbox import Verifier
    with Verifier(workers=2) as verifier:
        yield CodegenTraining(config, verifier)
