"""nano-planner's training data for reference.train (the registry's `training`): oracle
trajectories (the JSON steps learned, the request and the `Result:` lines masked; a share with
a masked bad-task detour), validation tasks run closed loop under the schema constraint.

    python -m reference.train nano-planner --init-from reference/checkpoints/nano-react/model.pt \
        --rope --block-size 1280 --batch-size 16 --steps 2400 --lr 2e-3 --warmup 50 --threads 1 \
        --mix average_length=2,two_longest_times_const=2,length_diff_arith=1.5,\
total_lengths_compare=1.5

The general trainer gives what the development trainer (reference/planner/train.py, which made
the committed checkpoint) lacks: the MLPerf training log and validation-based selection.
Requests of the frozen set, of its generalisation split and of validation are never trained on.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

from reference.planner.tasks import (VAL_SEED, generate, load_eval_set, load_generalisation_set,
                                     parse_mix)

# `--space full`: this share of trajectories (and half of validation) from the whole declared
# space (tasks.PLANNER_SPACE); the rest keep the frozen set's distribution
SPACE_SHARE = 0.7


class PlannerTraining:
    def __init__(self, config):
        self.config = config
        self.mix = parse_mix(config.mix) if config.mix else None
        self.broad = SPACE_SHARE if getattr(config, "space", "") == "full" else 0.0

    def eval_prompts(self) -> set[str]:
        """Every request of the frozen set and of its generalisation split."""
        return {t.request for t in load_eval_set()} | {t.request for t in load_generalisation_set()}

    def validation_tasks(self, n: int) -> list:
        if not self.broad:
            return [t.task for t in generate(VAL_SEED, n, exclude=self.eval_prompts(),
                                             prefix="val-")]
        half = n // 2
        return [t.task for t in generate(VAL_SEED, n - half, exclude=self.eval_prompts(),
                                         prefix="val-")] + \
            [t.task for t in generate(VAL_SEED + 1, half, exclude=self.eval_prompts(),
                                      prefix="vals-", broad=1.0)]

    def stream(self, seed: int, exclude: set[str]):
        """Endless oracle trajectories as (role, text) segment lists."""
        for traj in generate(seed, sys.maxsize, exclude=exclude, p_detour=self.config.p_detour,
                             unique=False, prefix="train-", mix=self.mix, broad=self.broad):
            yield traj.segments

    def solved(self, model, task) -> bool:
        from reference.episode import run_env
        from reference.planner.env import PlannerEnv
        return run_env(model, PlannerEnv(task.request, max_steps=10)).answer == task.answer


@contextmanager
def planner_training(config):
    yield PlannerTraining(config)
