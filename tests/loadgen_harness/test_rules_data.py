import re
import subprocess
import sys

import pytest

from reference.rules import ROOT, RulesError, load_rules
from loadgen_harness.submission import loadgen_settings
from reference.grading import Grader, load_tasks
from reference.hashing import file_sha256


@pytest.mark.parametrize("name", ["nano-react", "nano-codegen", "nano-planner"])
def test_rules_file_matches_the_repository(name):
    rules = load_rules()
    b = rules.benchmark(name)
    assert file_sha256(b.eval_set) == b.eval_set_sha256
    assert file_sha256(b.reference_checkpoint) == b.reference_checkpoint_sha256
    recorded = (b.reference_checkpoint.parent / "model.sha256").read_text().split()[0]
    assert recorded == b.reference_checkpoint_sha256
    # the reference's recorded answers reproduce its stated accuracy, task by task
    import json
    rows = [json.loads(l) for l in b.reference_results.read_text().splitlines()]
    tasks = load_tasks(name, b.eval_set)
    assert [r["id"] for r in rows] == [t.id for t in tasks]
    with Grader() as g:
        assert all(r["correct"] == g.correct(name, t, r["answer"]) for r, t in zip(rows, tasks))
    assert round(sum(r["correct"] for r in rows) / len(rows), 4) == b.quality_reference
    assert b.subset_target(range(len(rows))) == b.quality_target


def test_rules_md_states_the_numbers_of_rules_yaml():
    rules = load_rules()
    text = (ROOT / "rules.md").read_text()
    assert set(rules.benchmarks) == {"nano-react", "nano-codegen", "nano-planner"}
    for b in rules.benchmarks.values():
        for needle in [b.eval_set_sha256, b.reference_checkpoint_sha256,
                       f"{b.quality_reference:.4f}", f"{b.quality_target:.4f}",
                       f"{b.name} {b.scenarios['Server']['target_latency_ms']} ms",
                       f"{b.name} {b.reference_mean_generated_tokens} tokens"]:
            assert needle in text, needle
    for needle in [f"{rules.profile('official').min_duration_ms // 1000} s",
                   f"{rules.profile('smoke').min_duration_ms // 1000} s"]:
        assert needle in text, needle
    for name, seed in rules.official_seeds.items():
        assert f"{name} = {seed}" in text
    for prof in rules.profiles.values():
        for scen, n in prof.min_query_count.items():
            assert re.search(rf"\| {prof.name} \| {scen} \| {n} \|", text), (prof.name, scen)


def test_official_seeds_are_loadgens_builtin_ones(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("")
    code = ("import mlperf_loadgen as lg; ts = lg.TestSettings(); "
            f"ts.FromConfig({str(conf)!r}, 'gptj', 'Offline'); "
            "print(ts.qsl_rng_seed, ts.sample_index_rng_seed, ts.schedule_rng_seed)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    qsl, sample, schedule = map(int, out.stdout.split())
    assert load_rules().official_seeds == {"qsl_rng_seed": qsl, "sample_index_rng_seed": sample,
                                           "schedule_rng_seed": schedule}


def test_profiles_set_loadgen_settings():
    rules = load_rules()
    bench = rules.benchmark("nano-react")
    tuning = {"offline_expected_qps": 10, "server_target_qps": 5,
              "single_stream_expected_latency_ms": 50}
    off = loadgen_settings(rules, bench, "Offline", "PerformanceOnly", rules.profile("official"),
                           tuning)
    assert off["min_duration_ms"] == 60000 and off["offline_expected_qps"] == 10
    assert off["qsl_rng_seed"] == rules.official_seeds["qsl_rng_seed"]
    srv = loadgen_settings(rules, bench, "Server", "PerformanceOnly", rules.profile("smoke"),
                           tuning)
    assert srv["min_duration_ms"] == 5000 and srv["min_query_count"] >= 459
    assert srv["server_target_latency_ns"] == bench.target_latency_ns("Server")
    acc = loadgen_settings(rules, bench, "Offline", "AccuracyOnly", rules.profile("smoke"), tuning)
    assert acc["accuracy_sample_count_override"] == 100
    full = loadgen_settings(rules, bench, "Offline", "AccuracyOnly", rules.profile("official"),
                            tuning)
    assert "accuracy_sample_count_override" not in full
    assert not rules.profile("smoke").eligible and rules.profile("official").eligible
    # a smoke Server run offers its profile's share of the system's rate; official all of it
    assert srv["server_target_qps"] == pytest.approx(5 * rules.profile("smoke").server_qps_fraction)
    assert rules.profile("smoke").server_qps_fraction < 1.0
    official = loadgen_settings(rules, bench, "Server", "PerformanceOnly",
                                rules.profile("official"), tuning)
    assert official["server_target_qps"] == 5


@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.5"])
def test_a_server_qps_fraction_outside_zero_one_is_refused(tmp_path, fraction):
    text = (ROOT / "rules.yaml").read_text().replace("server_qps_fraction: 0.75",
                                                     f"server_qps_fraction: {fraction}")
    bad = tmp_path / "rules.yaml"
    bad.write_text(text)
    with pytest.raises(RulesError, match="server_qps_fraction"):
        load_rules(bad)


def test_unknown_profile_and_malformed_rules_are_errors(tmp_path):
    with pytest.raises(RulesError, match="unknown profile"):
        load_rules().profile("fast")
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nbenchmarks: {}\n")
    with pytest.raises(RulesError, match="malformed"):
        load_rules(bad)


def test_rules_md_compliance_table_is_the_generated_one():
    out = subprocess.run([sys.executable, "-m", "compliance", "rules", "--markdown"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out in (ROOT / "rules.md").read_text(), "regenerate section 9 of rules.md"
