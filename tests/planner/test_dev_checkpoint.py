"""The committed development planner, closed loop on a few frozen tasks (about 5 s)."""
import pytest
import torch

from reference.model import GPT, GPTConfig
from reference.planner.agent import run_episode
from reference.planner.constraint import StepConstraint
from reference.planner.metrics import aggregate, score_episode
from reference.planner.tasks import DATA_DIR, file_sha256, load_eval_set

CHECKPOINT = DATA_DIR.parent / "checkpoints" / "dev" / "model.pt"

# the constraint's library; a skip (reported with -rs) until pyproject.toml lists it
pytest.importorskip("outlines_core", reason="needs outlines-core==0.2.14, not yet in "
                    "pyproject.toml (reference/planner/README.md)")


def test_the_dev_checkpoint_is_the_recorded_one():
    recorded = (CHECKPOINT.parent / "model.sha256").read_text().split()[0]
    assert file_sha256(CHECKPOINT) == recorded


def test_the_dev_planner_solves_frozen_tasks_through_the_executor():
    torch.set_num_threads(1)
    ck = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    model = GPT(GPTConfig(**ck["config"])).eval()
    model.load_state_dict(ck["model"])
    sc = StepConstraint()
    tasks = load_eval_set()[:6]
    scores = [score_episode(t, run_episode(model, sc, t.request).steps) for t in tasks]
    agg = aggregate(scores)
    # 5 of these 6 pass here (the average_length one fails); 0.93 on the first 100 (README.md)
    assert agg["completion_rate"] == 1.0 and agg["pass_rate"] >= 4 / 6, agg
