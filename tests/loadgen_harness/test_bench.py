"""`make bench` end to end on a few episodes: naive vs engine vs LoadGen, and a Server p99."""
import json

import pytest

from loadgen_harness import bench


def test_bench_reports_rates_agreement_and_server_latency(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--benchmark", "nano-codegen", "--tasks", "24", "--naive-tasks", "3",
                       "--agreement", "--server-qps", "20", "--server-seconds", "1", "--draft", "8",
                       "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["draft"] == 8 and len(fig["rounds"]) == 2  # direct and LoadGen, ABBA
    mean = sum(r["engine_eps"] for r in fig["rounds"]) / 2
    assert fig["engine_eps"] == pytest.approx(mean, abs=1e-3)
    assert fig["naive_eps"] > 0 and fig["engine_eps"] > 0 and fig["loadgen_eps"] > 0
    roof = fig["roofline"]
    assert roof["bound_eps"] > 0 and 0 < roof["engine_fraction_of_bound"]
    # drafts: several tokens per row and forward, whose own bound reads the cache less often
    assert fig["engine_time_breakdown"]["tokens_per_row_and_forward"] > 1
    assert roof["with_drafts"]["memory_bound_eps"] > roof["memory_bound_eps"]
    assert sum(v for k, v in fig["engine_time_breakdown"].items()
               if k.endswith("_pct") and not k.startswith("attention")) > 99
    assert fig["agreement_naive_engine"] == 1.0  # greedy: the engine answers as the baseline
    (srv,) = fig["server"]
    assert srv["qps"] == 20 and srv["p99_ms"] >= srv["mean_ms"] > 0
    assert "Server  20.00 QPS" in capsys.readouterr().out


def test_bad_server_rates_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--server-qps", "fast"])
    assert e.value.code == 2 and "expected numbers" in capsys.readouterr().err
    for bad in (["--draft", "-1"], ["--tasks", "0"], ["--naive-tasks", "0"],
                ["--constraint-tasks", "-1"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as e:
            bench.main(bad)
        assert e.value.code == 2 and bad[0] in capsys.readouterr().err


@pytest.mark.parametrize("args, env, said", [
    (["--benchmark", "nano-nothing"], {}, "known: nano-react"),
    (["--system", "no-such-machine"], {}, "known systems"),
    (["--checkpoint", "no/such/model.pt"], {}, "no checkpoint"),
    ([], {"NANO_ATTENTION": "fast"}, "NANO_ATTENTION='fast': use auto, sdpa or kernel"),
])
def test_user_mistakes_are_one_line_errors_before_any_run(args, env, said, capsys,
                                                          monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as e:
        bench.main(args + ["--tasks", "2", "--naive-tasks", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and said in err and "Traceback" not in err


def test_roofline_counts_work_from_the_step_records():
    from types import SimpleNamespace as NS

    from loadgen_harness.roofline import MachineLimits, bound, episode_work
    from reference.model import GPTConfig
    cfg = GPTConfig(n_layer=4, n_embd=128)
    # a prompt of 20 tokens, a step decoding 10, an observation of 5, a final step of 7
    ep = NS(steps=[NS(context_tokens=20, generated_tokens=10),
                   NS(context_tokens=35, generated_tokens=7)])
    w = episode_work(cfg, [ep], batch=1)
    assert (w.tokens_decoded, w.tokens_prefilled) == (17, 25)
    w64 = episode_work(cfg, [ep], batch=64)
    assert w64.gbytes < w.gbytes and w64.gflop == w.gflop  # batching shares weight reads only
    b = bound(MachineLimits(100.0, 10.0, 2), w)
    assert b["bound_eps"] == min(b["compute_bound_eps"], b["memory_bound_eps"]) > 0
    # four tokens per row and forward: the same FLOPs, weights and cache read a quarter as often
    w4 = episode_work(cfg, [ep], batch=1, tokens_per_forward=4)
    assert w4.gflop == w.gflop and w4.gbytes < w.gbytes and w4.tokens_per_forward == 4
    with pytest.raises(ValueError):
        episode_work(cfg, [ep], batch=1, tokens_per_forward=0.5)


def test_bench_on_the_planner_compares_constraint_and_executors(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--benchmark", "nano-planner", "--tasks", "6", "--naive-tasks", "1",
                       "--constraint-tasks", "6", "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    c = fig["constraint"]
    assert c["constrained"]["schema_violations"] == 0 and c["constrained"]["steps"] > 0
    ex = fig["executors"]
    assert ex["tasks"] == 6 and ex["translator"]["eps"] > 0 and ex["caller"]["eps"] > 0
    assert ex["caller"]["tool_steps"] > 0
    # the model writes its calls: far slower per call than the regular expressions
    assert ex["caller"]["executor_ms_per_step"] > 10 * ex["translator"]["executor_ms_per_step"]
    assert ex["same_answers"] >= 5
