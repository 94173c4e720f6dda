"""rules.yaml's sections are typed at load (issue 32): an unknown key, a missing one or a value
of the wrong type is one RulesError naming the key, before any run or check starts."""
import copy

import pytest

from reference.rules import RULES_PATH, Checker, RulesError, load_rules
from reference.yamlio import load_yaml


def _load(tmp_path, edit):
    doc = copy.deepcopy(load_yaml(RULES_PATH))
    edit(doc)
    import json
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return load_rules(path)


def test_the_committed_rules_load_typed_and_read_as_before():
    rules = load_rules()
    assert isinstance(rules.checker, Checker)
    assert rules.checker.max_trace_records == rules.checker["max_trace_records"] > 0
    assert rules.checker.device_classes["h100"].match == ("H100",)
    assert {**rules.checker}["leaderboard_replay"] == rules.checker.leaderboard_replay
    assert rules.audits.TEST04.sample_index == rules.audits["TEST04"]["sample_index"]
    assert isinstance(rules.sandbox.wall_s, float)
    server = rules.benchmark("nano-react").scenarios["Server"]
    assert server.target_latency_ms == 8000 and server.lower_is_better is False
    with pytest.raises(KeyError):
        rules.checker["max_trace_record"]  # noqa: B018  a typo is a KeyError, not a default


@pytest.mark.parametrize("edit, says", [
    (lambda d: d["checker"].update(max_trace_record=5), "checker: unknown key max_trace_record"),
    (lambda d: d["checker"].pop("rate_tolerance_fraction"),
     "checker: missing rate_tolerance_fraction"),
    (lambda d: d["checker"].update(leaderboard_replay="many"),
     "checker.leaderboard_replay: expected an integer"),
    (lambda d: d["checker"].update(leaderboard_replay=2.5),
     "checker.leaderboard_replay: expected an integer"),
    (lambda d: d["checker"]["device_classes"]["h100"].update(bandwidth=1),
     "checker.device_classes.h100: unknown key bandwidth"),
    (lambda d: d["checker"]["device_classes"]["h100"].update(match="H100"),
     "checker.device_classes.h100.match: expected a list"),
    (lambda d: d["sandbox"].update(wall_s=True), "sandbox.wall_s: expected a number"),
    (lambda d: d["audits"]["TEST04"].pop("max_speedup"), "audits.TEST04: missing max_speedup"),
    (lambda d: d["audits"].update(TEST05={}), "audits: unknown key TEST05"),
    (lambda d: d["benchmarks"]["nano-react"]["scenarios"]["Server"].update(target_latency=9),
     "benchmarks.nano-react.scenarios.Server: unknown key target_latency"),
    (lambda d: d["benchmarks"]["nano-react"]["scenarios"]["Offline"].pop("metric"),
     "benchmarks.nano-react.scenarios.Offline: missing metric"),
    (lambda d: d.update(checker=[1, 2]), "checker: expected a mapping"),
])
def test_a_bad_section_is_one_clear_error_at_load(tmp_path, edit, says):
    with pytest.raises(RulesError) as err:
        _load(tmp_path, edit)
    assert says in str(err.value)
