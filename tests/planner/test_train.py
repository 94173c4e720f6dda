"""The development trainer runs end to end on a tiny model (it imports reference/train.py's
batching and schedule, which other work refactors: this keeps that dependency honest)."""
import json

import pytest

from reference.planner import train

# the constraint's library; a skip (reported with -rs) until pyproject.toml lists it
pytest.importorskip("outlines_core", reason="needs outlines-core==0.2.14, not yet in "
                    "pyproject.toml (reference/planner/README.md)")


def test_one_training_step_then_a_scored_constrained_evaluation(tmp_path):
    train.main(["--steps", "1", "--warmup", "1", "--batch-size", "2", "--n-layer", "1",
                "--n-embd", "32", "--n-head", "2", "--eval-n", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["steps_done"] == 1 and result["eval"]["episodes"] == 1
    assert set(result["eval"]) >= {"pass_rate", "bad_task_rate", "completion_rate"}
    assert (tmp_path / "model.pt").is_file()
