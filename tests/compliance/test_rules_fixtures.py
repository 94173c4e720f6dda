"""Every rule: the real submissions pass, and each negative fixture fails with exactly its id."""
import json
import shutil
from pathlib import Path

import pytest

from compliance import cli
from compliance.check import check_path
from compliance.registry import REGISTRY
from tests.compliance.mutate import apply, load_fixture

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
REFERENCE = ROOT / "results/closed/reference"
NEGATIVE = sorted((ROOT / "tests/fixtures/negative").glob("*.yaml"))


def test_committed_reference_submission_is_valid():
    report = check_path(REFERENCE, "official")
    assert report.valid, [f.to_dict() for f in report.findings]
    assert report.meta["results"]


def test_smoke_submission_passes_only_as_smoke():
    report = check_path(SMOKE, "smoke")
    assert report.valid, [f.to_dict() for f in report.findings]
    assert not check_path(SMOKE, "official").valid


@pytest.mark.parametrize("fixture", NEGATIVE, ids=[p.stem for p in NEGATIVE])
def test_negative_fixture_fails_with_exactly_its_rule(fixture, tmp_path):
    spec = load_fixture(fixture)
    root = tmp_path / spec.get("dirname", "submission")  # e.g. closed/alice: the MLPerf layout
    shutil.copytree(SMOKE, root, symlinks=True)
    for edit in spec["edits"]:
        apply(root, edit)
    report = check_path(root, spec.get("profile", "smoke"))
    assert not report.valid
    # `may_also`: a companion finding that depends on the run's timings, not on the edit
    found, expected = report.rule_ids(), set(spec["expect"])
    assert expected <= found <= expected | set(spec.get("may_also", ())), \
        [f.to_dict() for f in report.findings]


def test_every_rule_has_a_negative_fixture():
    # L104: test_archives; B70x: test_leaderboard; T609: test_budgets; R801: test_replay;
    # X901: below; T613: test_copies
    covered = {p.stem.split("-")[0] for p in NEGATIVE} | \
        {"L104", "X901", "B701", "B702", "B703", "B704", "T609", "R801", "T613"}
    assert {r.id for r in REGISTRY} <= covered


def test_a_crashing_rule_is_an_internal_error_finding(monkeypatch):
    import compliance.check as check_mod
    from compliance.registry import Rule

    def broken(ctx, rule):
        raise KeyError("bug")
        yield  # pragma: no cover

    monkeypatch.setattr(check_mod, "REGISTRY", (Rule("G301", "x", "", broken),))
    report = check_path(SMOKE, "smoke")
    assert [f.rule for f in report.findings] == ["X901"] and not report.valid
    assert "rule G301 crashed: KeyError" in report.findings[0].message


def test_cli_exit_codes_and_json(capsys, tmp_path):
    assert cli.main(["check", str(SMOKE), "--profile", "smoke", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True and out["findings"] == []
    assert cli.main(["check", str(SMOKE)]) == 1            # smoke checked as official
    assert cli.main(["check", str(tmp_path / "nope")]) == 2
    assert cli.main(["explain", "NOPE"]) == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


def test_explain_prints_the_rules_documentation(capsys):
    assert cli.main(["explain", "a501"]) == 0
    assert "TEST01" in capsys.readouterr().out


def test_rules_md_lists_every_rule():
    text = (ROOT / "rules.md").read_text()
    for r in REGISTRY:
        assert f"| {r.id} | {r.name} |" in text, r.id
