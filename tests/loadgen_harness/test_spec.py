"""The typed run spec and tuning: one default per scenario, and no silent field."""
import pytest

from loadgen_harness.spec import DEFAULT_MAX_BATCH, RunSpec, SpecError, Tuning
from loadgen_harness.system import load_system

BASE = dict(benchmark="nano-react", scenario="Server", mode="PerformanceOnly", out_dir="/x",
            checkpoint="/c.pt", eval_set="/e.jsonl", settings={})


def test_a_spec_round_trips_through_its_file(tmp_path):
    spec = RunSpec(**BASE, workers=2)
    spec.write(tmp_path / "run_spec.json")
    back = RunSpec.read(tmp_path / "run_spec.json")
    assert back == spec and back.max_batch == DEFAULT_MAX_BATCH["Server"]


@pytest.mark.parametrize("doc", [{**BASE, "max_bacth": 4}, {k: v for k, v in BASE.items()
                                                             if k != "eval_set"}])
def test_a_misspelt_or_missing_field_is_an_error(doc):
    with pytest.raises(SpecError):
        RunSpec.from_dict(doc)


def test_tuning_reads_the_system_file_with_its_defaults():
    tuning = load_system("cpu")["tuning"]
    t = Tuning.of(tuning, "nano-react", "Offline")
    assert t.max_batch == 64 and t.loadgen["offline_expected_qps"] > 0
    bare = {"device": "cpu", "benchmarks": {"nano-react": {"Server": {"server_target_qps": 3}}}}
    assert Tuning.of(bare, "nano-react", "Server").max_batch == DEFAULT_MAX_BATCH["Server"]
    assert Tuning.of(bare, "nano-react", "Server").draft == 0  # no drafts unless asked for
    assert Tuning.of({**bare, "draft": 5}, "nano-react", "Server").run_fields()["draft"] == 5
    with pytest.raises(SpecError, match="no tuning for nano-react Offline"):
        Tuning.of(bare, "nano-react", "Offline")
