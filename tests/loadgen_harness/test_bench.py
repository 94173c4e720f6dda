"""`make bench` end to end on a few episodes: naive vs engine vs LoadGen, and a Server p99."""
import json

from loadgen_harness import bench


def test_bench_reports_rates_agreement_and_server_latency(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--benchmark", "nano-codegen", "--tasks", "24", "--naive-tasks", "3",
                       "--agreement", "--server-qps", "20", "--server-seconds", "1",
                       "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["naive_eps"] > 0 and fig["engine_eps"] > 0 and fig["loadgen_eps"] > 0
    assert fig["agreement_naive_engine"] == 1.0  # greedy: the engine answers as the baseline
    (srv,) = fig["server"]
    assert srv["qps"] == 20 and srv["p99_ms"] >= srv["mean_ms"] > 0
    assert "Server  20.00 QPS" in capsys.readouterr().out


def test_bad_server_rates_are_a_usage_error(capsys):
    import pytest
    with pytest.raises(SystemExit) as e:
        bench.main(["--server-qps", "fast"])
    assert e.value.code == 2 and "expected numbers" in capsys.readouterr().err
