"""A tiny real training run: deterministic, MLLOG timing log, checkpoint and its checksum."""
import json

import pytest
import torch

from reference import train
from reference.react.tasks import file_sha256

TINY = ["nano-react", "--steps", "3", "--batch-size", "4", "--n-layer", "1", "--n-embd", "32",
        "--n-head", "2", "--eval-start", "3", "--eval-every", "3", "--val-size", "1",
        "--warmup", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    train.main(TINY + ["--out", str(a)])
    train.main(TINY + ["--out", str(b)])
    return a, b


def _mllog(path):
    lines = [l for l in path.read_text().splitlines() if l.startswith(":::MLLOG ")]
    return [json.loads(l[len(":::MLLOG "):]) for l in lines]


def test_training_is_deterministic_for_a_seed(two_runs):
    a, b = two_runs
    sa = torch.load(a / "model.pt", weights_only=True)["model"]
    sb = torch.load(b / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_log_is_mllog_with_required_keys(two_runs):
    events = _mllog(two_runs[0] / "train_log.txt")
    keys = [e["key"] for e in events]
    for k in ("run_start", "run_stop", "seed", "global_batch_size", "opt_base_learning_rate",
              "eval_accuracy"):
        assert k in keys, k
    stop = next(e for e in events if e["key"] == "run_stop")
    assert stop["metadata"]["status"] == "success"
    acc = next(e for e in events if e["key"] == "eval_accuracy")
    assert acc["metadata"]["samples_count"] == 12 and 0.0 <= acc["value"] <= 1.0


def test_checkpoint_checksum_is_recorded(two_runs):
    out = two_runs[0]
    assert (out / "model.sha256").read_text().split()[0] == file_sha256(out / "model.pt")
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["args"]["steps"] == 3 and cfg["model"]["n_embd"] == 32


def test_no_mask_switch_is_recorded(tmp_path):
    train.main(TINY + ["--steps", "1", "--eval-start", "1", "--out", str(tmp_path), "--no-mask"])
    events = _mllog(tmp_path / "train_log.txt")
    assert next(e for e in events if e["key"] == "label_masking")["value"] is False
