import copy

import pytest

from loadgen_harness.trace import episode_record, trace_validator
from reference.react.agent import ReactEnv


def _record():
    env = ReactEnv("What is pi times 2?")
    env.step("Thought: I need pi.\nAction: lookup\nAction Input: pi\n")
    env.step("Thought: I have the answer.\nFinal Answer: 3.14159\n")
    return episode_record(0, 2, "react-00002", "AccuracyOnly", env.result)


def test_a_real_episode_record_is_valid():
    rec = _record()
    assert not list(trace_validator().iter_errors(rec))
    assert rec["steps"][0]["observation"] == "3.14159" and rec["answer"] == "3.14159"


@pytest.mark.parametrize("mutate", [
    lambda r: r.pop("steps"),
    lambda r: r.update(steps=[]),
    lambda r: r.update(stop_reason="gave_up"),
    lambda r: r.update(mode="Accuracy"),
    lambda r: r.update(latency_ms=-1),
    lambda r: r.update(qsl_idx="2"),
    lambda r: r.update(schema_version=2),
    lambda r: r.update(extra=1),
    lambda r: r["steps"][0].update(generation_ms="fast"),
    lambda r: r["steps"][0].pop("tool_ms"),
    lambda r: r["steps"][0].update(kv_cache_bytes=-5),
])
def test_malformed_records_fail_the_schema(mutate):
    rec = copy.deepcopy(_record())
    mutate(rec)
    assert list(trace_validator().iter_errors(rec))
