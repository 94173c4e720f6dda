"""A tiny real training run: deterministic, MLLOG timing log, checkpoint and its checksum."""
import json

import pytest
import torch

from reference import train
from reference.hashing import file_sha256

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
    # call sites are repository paths, never this machine's
    assert {e["metadata"]["file"] for e in events} <= {"reference/train.py"}
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


def test_init_from_checks_the_architecture_and_accepts_pre_rope_checkpoints(two_runs, tmp_path,
                                                                              capsys):
    src = two_runs[0] / "model.pt"
    # a checkpoint written before GPTConfig had `rope` continues as a learned-position model
    old = torch.load(src, weights_only=True)
    old["config"].pop("rope")
    torch.save(old, tmp_path / "old.pt")
    train.main(TINY + ["--steps", "1", "--eval-start", "1", "--init-from", str(tmp_path / "old.pt"),
                       "--out", str(tmp_path / "cont")])
    assert (tmp_path / "cont" / "model.pt").is_file()
    # a rotary-position model cannot start from learned-position weights: a usage error
    with pytest.raises(SystemExit) as e:
        train.main(TINY + ["--rope", "--init-from", str(src), "--out", str(tmp_path / "bad")])
    assert e.value.code == 2 and "has config" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        train.main(TINY + ["--init-from", str(tmp_path / "junk.pt"),
                           "--out", str(tmp_path / "bad")])
    assert "not a checkpoint" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_rope_run_records_its_position_encoding(tmp_path):
    train.main(TINY + ["--rope", "--steps", "1", "--eval-start", "1", "--out", str(tmp_path)])
    cfg = json.loads((tmp_path / "train_config.json").read_text())
    assert cfg["model"]["rope"] is True
    state = torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    assert not any(k.startswith("wpe") for k in state)  # no learned position table


def test_broad_training_mix_and_its_validation(tmp_path):
    train.main(TINY + ["--broad", "0.5", "--val-size", "2", "--out", str(tmp_path)])
    cfg = json.loads((tmp_path / "train_config.json").read_text())
    assert cfg["args"]["broad"] == 0.5
    events = _mllog(tmp_path / "train_log.txt")
    assert next(e for e in events if e["key"] == "broad")["value"] == 0.5


def test_broad_is_refused_for_nano_codegen(capsys):
    with pytest.raises(SystemExit):
        train.main(["nano-codegen", "--broad", "0.5"])
    assert "--broad applies to nano-react only" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["nano-chess"], "unknown benchmark 'nano-chess'"),
    (["nano-planner", "--variety", "wide"], "--variety does not apply to nano-planner"),
    (["nano-planner", "--mix", "sum_lengths=2"], "--mix: "),          # a nano-react template
    (["nano-codegen", "--mix", "sum_lengths=2"], "--mix applies to nano-react and nano-planner")])
def test_a_benchmark_or_option_this_trainer_cannot_use_is_a_usage_error(argv, says, capsys,
                                                                         tmp_path):
    with pytest.raises(SystemExit) as e:
        train.main(argv + ["--steps", "1", "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_replay_mixes_nano_react_trajectories_in_its_share():
    def codegen_like():
        while True:
            yield [("prompt", "Task: x\n"), ("agent", "Program: result = 1\nEnd\n")]

    cfg = train.TrainConfig(workload="nano-codegen", replay=0.25, seed=5)
    rows = [next(s) for s in [train.with_replay(codegen_like(), cfg)] for _ in range(800)]
    replayed = [r for r in rows if r[0][1].startswith("Question: ")]
    assert 150 <= len(replayed) <= 250  # a seeded 25% share
    assert all(r[0][1] == "Task: x\n" for r in rows if r not in replayed)
    # nano-react's evaluation questions are never replayed
    from reference.react.training import ReactTraining
    held = ReactTraining(train.replay_config(5)).eval_prompts()
    assert not {r[0][1].removeprefix("Question: ").rstrip("\n") for r in replayed} & held
    again = [next(s) for s in [train.with_replay(codegen_like(), cfg)] for _ in range(800)]
    assert again == rows


@pytest.mark.parametrize("argv, says", [(["nano-react", "--replay", "0.2"], "another workload"),
                                        (["nano-codegen", "--replay", "1"], "below 1"),
                                        (["nano-codegen", "--replay", "-0.1"], "below 1"),
                                        (["nano-react", "--miscopy", "0.5"], "nano-codegen only"),
                                        (["nano-codegen", "--miscopy", "2"], "between 0 and 1")])
def test_replay_or_miscopy_out_of_range_or_misapplied_is_a_usage_error(argv, says, capsys,
                                                                          tmp_path):
    with pytest.raises(SystemExit) as e:
        train.main(argv + ["--out", str(tmp_path / "out")])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_nano_planner_trains_with_mllog_validation_and_a_longer_rotary_context(tmp_path):
    # from a rotary checkpoint of another context length (nano-react's 1,024 -> 1,280)
    src = tmp_path / "src"
    train.main(["nano-react", "--rope", "--steps", "1", "--batch-size", "2", "--n-layer", "1",
                "--n-embd", "32", "--n-head", "2", "--eval-start", "1", "--eval-every", "1",
                "--val-size", "1", "--warmup", "1", "--threads", "1", "--out", str(src)])
    out = tmp_path / "planner"
    train.main(["nano-planner", "--rope", "--init-from", str(src / "model.pt"),
                "--block-size", "1280", "--steps", "2", "--batch-size", "2", "--n-layer", "1",
                "--n-embd", "32", "--n-head", "2", "--eval-start", "2", "--eval-every", "2",
                "--val-size", "1", "--warmup", "1", "--threads", "1",
                "--mix", "average_length=2", "--out", str(out)])
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["model"]["block_size"] == 1280 and cfg["args"]["mix"] == "average_length=2"
    events = _mllog(out / "train_log.txt")
    assert any(e["key"] == "eval_accuracy" for e in events)
    assert next(e for e in events if e["key"] == "template_mix")["value"]["average_length"] == 2
    assert (out / "model.pt").is_file() and (out / "model.sha256").is_file()
