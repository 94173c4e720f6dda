"""The masking study's statistics, table and inputs (the runs themselves are hours of training)."""
import json
import math
import subprocess

import pytest

from reference import masking_study as ms


@pytest.mark.parametrize("xs, ys, t, df, p", [
    # reference values from scipy.stats.ttest_ind(xs, ys, equal_var=False)
    ([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], -1.8974, 5.8824, 0.10753),
    ([0.85, 0.86, 0.84], [0.88, 0.89, 0.87], -3.6742, 4.0, 0.02131),
    ([0.9, 0.7, 0.8], [0.8, 0.81, 0.79], 0.0, 2.04, 1.0),
])
def test_welch_t_test_matches_the_reference_values(xs, ys, t, df, p):
    got_t, got_df, got_p = ms.welch_t_test(xs, ys)
    assert got_t == pytest.approx(t, abs=1e-3)
    assert got_df == pytest.approx(df, abs=1e-2)
    assert got_p == pytest.approx(p, abs=1e-4)


def test_betainc_edges_and_a_known_value():
    assert ms.betainc(2, 3, 0.0) == 0.0 and ms.betainc(2, 3, 1.0) == 1.0
    assert ms.betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-9)
    assert ms.betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-12)


def test_a_t_test_needs_two_runs_per_arm_and_identical_arms_give_p_one():
    with pytest.raises(ValueError):
        ms.welch_t_test([0.9], [0.8, 0.85])
    assert ms.welch_t_test([0.9, 0.9], [0.9, 0.9])[2] == 1.0
    t, _, p = ms.welch_t_test([0.9, 0.9], [0.8, 0.8])
    assert math.isinf(t) and p == 0.0


def _run(arm, seed, pass_rate):
    figures = {"pass_rate": pass_rate, "bad_task_rate": 0.05, "completion_rate": 1.0}
    return {"arm": arm, "seed": seed, "steps": 600, "train_wall_s": 900,
            "frozen": figures, "generalisation": dict(figures, pass_rate=pass_rate - 0.1)}


def test_table_reports_each_arm_and_the_p_value(tmp_path, capsys):
    runs = [_run("masked", s, p) for s, p in ((1, 0.85), (2, 0.86), (3, 0.84))] + \
           [_run("unmasked", s, p) for s, p in ((1, 0.88), (2, 0.89), (3, 0.87))]
    for r in runs:
        d = tmp_path / f"{r['arm']}-s{r['seed']}"
        d.mkdir()
        (d / "result.json").write_text(json.dumps(r))
    assert ms.main(["nano-planner", "--out", str(tmp_path), "--table"]) == 0
    out = capsys.readouterr().out
    row = next(l for l in out.splitlines() if l.startswith("| frozen | pass rate"))
    assert "0.850 +- 0.010 (n=3)" in row and "0.880 +- 0.010 (n=3)" in row and "0.021" in row
    assert "unmasked seed 3: frozen 0.870" in out and "(trained in 15.0 min)" in out


def test_table_names_where_a_restored_run_came_from(tmp_path, capsys):
    restored = dict(_run("masked", 1, 0.9), train_wall_s=None, restored_from="an earlier record")
    d = tmp_path / "masked-s1"
    d.mkdir()
    (d / "result.json").write_text(json.dumps(restored))
    assert ms.main(["nano-planner", "--out", str(tmp_path), "--table"]) == 0
    assert "masked seed 1: frozen 0.900 / 0.050 / 1.000, generalisation 0.800 / 0.050 / 1.000 " \
           "(an earlier record)" in capsys.readouterr().out


def test_table_of_an_empty_study_and_bad_seeds_are_clear_errors(tmp_path, capsys):
    assert ms.main(["nano-planner", "--out", str(tmp_path), "--table"]) == 2
    assert "no finished runs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        ms.main(["nano-planner", "--seeds", "one,two", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert not any(tmp_path.iterdir())


def test_a_benchmark_with_one_metric_gets_its_own_table_and_never_anothers_runs(tmp_path, capsys):
    for arm, seed, em in (("masked", 12, 0.99), ("masked", 13, 0.97), ("unmasked", 12, 0.9),
                          ("unmasked", 13, 0.92)):
        d = tmp_path / f"{arm}-s{seed}"
        d.mkdir()
        (d / "result.json").write_text(json.dumps(
            {"arm": arm, "seed": seed, "steps": 750, "train_wall_s": 600,
             "frozen": {"exact_match": em}, "generalisation": {"exact_match": em - 0.2}}))
    assert ms.main(["nano-react", "--out", str(tmp_path), "--table"]) == 0
    out = capsys.readouterr().out
    assert "| generalisation | exact match | 0.780 +- 0.014 (n=2) | 0.710 +- 0.014 (n=2) |" in out
    assert "Per run (exact match):" in out and "unmasked seed 13: frozen 0.920, " \
        "generalisation 0.720 (trained in 10.0 min)" in out
    assert ms.main(["nano-planner", "--out", str(tmp_path), "--table"]) == 2
    assert "another benchmark's study" in capsys.readouterr().err


def test_an_unknown_benchmark_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        ms.main(["nano-nothing", "--out", str(tmp_path), "--table"])
    assert e.value.code == 2


def test_initial_weights_from_history_are_checked_against_their_hash(tmp_path):
    blob = ms.STUDIES["nano-react"].init
    if subprocess.run(["git", "cat-file", "-e", f"{blob.commit}^{{commit}}"],
                      capture_output=True).returncode != 0:
        pytest.skip("a shallow clone: the first-stage weights' commit is not here")
    wrong = ms.GitBlob(blob.commit, blob.path, "0" * 64)
    with pytest.raises(RuntimeError, match="not the expected weights"):
        wrong.materialise(tmp_path / "init.pt")
    assert not any(tmp_path.iterdir())  # nothing half-written left behind
    with pytest.raises(RuntimeError, match="cannot read"):
        ms.GitBlob("0" * 40, blob.path, blob.sha256).materialise(tmp_path / "init.pt")
    got = blob.materialise(tmp_path / "init.pt")
    assert ms.file_sha256(got) == blob.sha256
