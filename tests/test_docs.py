"""The docs say what the code and the committed files say (issue 29): every figure the README
and rules.md state that can be derived from rules.yaml or the committed reference submission
is derived here and compared."""
import json
import re
from pathlib import Path

import pytest

from reference.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RULES_MD = (ROOT / "rules.md").read_text()
REFERENCE = ROOT / "results/closed/reference"
RULES = load_rules()


def _measurements(bench: str, scen: str) -> dict:
    return json.loads((REFERENCE / f"results/cpu/{bench}/{scen}/measurements.json").read_text())


@pytest.mark.parametrize("bench", sorted(RULES.benchmarks))
def test_the_readme_status_table_states_the_reference_quality(bench):
    m = _measurements(bench, "Offline")
    row = next(line for line in README.splitlines()
               if line.startswith("| `reference/") and
               (bench.split("-")[1] in line.split("|")[1] or
                (bench == "nano-react" and line.startswith("| `reference/`:"))))
    acc = m["accuracy"]
    assert f"{acc[acc['metric']]:.3f}" in row, (bench, row)
    for split in m["accuracy_splits"].values():
        assert f"{split[split['metric']]:.3f}" in row, (bench, row)


@pytest.mark.parametrize("bench", sorted(RULES.benchmarks))
def test_the_server_bound_in_rules_md_is_the_one_the_reference_ran_under(bench):
    bound_ms = RULES.benchmark(bench).scenarios["Server"]["target_latency_ms"]
    conf = (REFERENCE / f"results/cpu/{bench}/Server/user.conf").read_text()
    assert f"{bench}.Server.target_latency = {bound_ms}" in conf
    assert f"{bench} {bound_ms} ms" in RULES_MD
    assert "ran under the earlier" not in RULES_MD


def test_the_test04_figures_in_rules_md_are_the_reference_runs():
    from compliance.checks import audits
    from compliance.context import Ctx
    from loadgen_harness.untrusted.tree import Tree
    ctx = Ctx(Tree(REFERENCE), RULES, "official")
    try:
        ratios = {(r.benchmark, r.scenario): audits._tokens_per_s(
            ctx, audits._audit(r, "TEST04"), r.scenario) / audits._tokens_per_s(
            ctx, r.perf, r.scenario) for r in ctx.results}
    finally:
        ctx.close()
    text = RULES_MD[RULES_MD.index("**TEST04**"):RULES_MD.index("**TEST09**")]
    for (bench, scen), ratio in sorted(ratios.items()):
        assert f"{ratio:.2f}x" in text, (bench, scen, f"{ratio:.2f}x")


def test_the_smoke_time_is_stated_once_the_same_everywhere():
    from loadgen_harness import submission
    said = re.findall(r"smoke\S*\s+#\s*about (\d+) minutes", README)
    doc = re.findall(r"--profile smoke\s+#\s*about (\d+) minutes", submission.__doc__)
    assert said and doc and set(said) == set(doc), (said, doc)


def test_the_paths_the_readme_names_exist():
    tops = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} - {"results"}
    missing = []
    for path in re.findall(r"`([A-Za-z_][\w./-]*/[\w./-]*)`", README):
        if path.split("/")[0] not in tops | {"results"} or "<" in path:
            continue
        if path.startswith(("results/closed/", "results/open/")) and \
                not path.startswith("results/closed/reference"):
            continue  # a student's submission, an example name
        if path.startswith("build/"):
            continue  # outputs of commands the README shows
        if not (ROOT / path.rstrip("/")).exists():
            missing.append(path)
    assert not missing, missing
