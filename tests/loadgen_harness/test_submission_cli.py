"""`make submission`'s failure paths: clear errors, and nothing left that looks complete."""
import pytest

from loadgen_harness import submission


def test_declared_gpu_on_this_machine_stops_with_a_clear_message(tmp_path, capsys):
    rc = submission.main(["--system", "a100", "--profile", "smoke", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not describe this machine" in err and "--allow-mismatch" in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_system_and_scenario_are_usage_errors(tmp_path, capsys):
    assert submission.main(["--system", "tpu9000", "--out", str(tmp_path)]) == 2
    assert "no declaration" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        submission.main(["--scenarios", "Offline,Batch", "--out", str(tmp_path)])


def test_a_mistyped_nano_attention_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NANO_ATTENTION", "fast")
    assert submission.main(["--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "NANO_ATTENTION='fast'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_closed_division_refuses_other_weights(tmp_path, tiny_checkpoint, capsys):
    rc = submission.main(["--profile", "smoke", "--checkpoint", str(tiny_checkpoint),
                          "--out", str(tmp_path)])
    assert rc == 2 and "closed division needs the reference checkpoint" in capsys.readouterr().err


def test_failed_run_leaves_no_result_directory(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")  # the run's process fails to load it
    out = tmp_path / "results"
    rc = submission.main(["--profile", "smoke", "--division", "open", "--checkpoint",
                          str(broken), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no submission was written" in err and "cannot load checkpoint" in err
    assert [p for p in out.rglob("*") if p.is_file()] == []
