"""nano-react's training data: oracle trajectories and validation tasks (reference.train asks
for them through the workload registry).

Trajectories come from the seeded task generator; `config.broad` draws that share of them (and
of validation) from the broadened distribution (random words, 1-6 digit operands, negatives,
decimals: tasks.TRAIN_DIST; with `config.space` 'full', the whole declared space: tasks.SPACE);
`config.mix` weighs templates. Questions of the frozen set, of its
generalisation split and of the validation set are never trained on.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

from reference.react.tasks import (SPACE, TRAIN_DIST, VAL_SEED, generate, load_eval_set,
                                   load_generalisation_set, parse_mix)


class ReactTraining:
    def __init__(self, config):
        self.config = config
        self.mix = parse_mix(config.mix) if config.mix else None
        # `--space full`: the broadened share comes from the whole declared space instead
        self.broad_dist = SPACE if getattr(config, "space", "") == "full" else TRAIN_DIST

    def eval_prompts(self) -> set[str]:
        """Every question of the frozen set and of its generalisation split."""
        return {t.question for t in load_eval_set()} | \
            {t.question for t in load_generalisation_set()}

    def validation_tasks(self, n: int) -> list:
        tasks = [t.task for t in generate(VAL_SEED, n, exclude=self.eval_prompts(), prefix="val-")]
        if self.config.broad:  # half of validation from the broadened training distribution
            half = n // 2
            tasks = tasks[:n - half] + [t.task for t in generate(
                VAL_SEED + 1, half, exclude=self.eval_prompts(), prefix="valb-",
                dist=self.broad_dist)]
        return tasks

    def stream(self, seed: int, exclude: set[str]):
        """Endless oracle trajectories as (role, text) segment lists."""
        for traj in generate(seed, sys.maxsize, exclude=exclude, p_detour=self.config.p_detour,
                             unique=False, mix=self.mix, broad=self.config.broad,
                             broad_dist=self.broad_dist):
            yield traj.segments

    def solved(self, model, task) -> bool:
        from reference.react.agent import run_episode
        return run_episode(model, task.question).answer == task.answer


@contextmanager
def react_training(config):
    yield ReactTraining(config)
