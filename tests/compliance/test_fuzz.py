"""Fuzz: a valid submission mutated in hundreds of seeded ways. The checker never crashes,
and every forged result (edited numbers, forged throughput, swapped answers, deleted or
truncated evidence) is caught."""
import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest

from compliance.check import check_path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
# Each case is one full check of the smoke submission (about 0.4 s). The default suite runs
# 160 of them; `make test-slow` runs 600 more with other seeds (about 520 of those change
# something: number/type edits of non-JSON files are no-ops).
N_CASES = 160
N_CASES_SLOW = 600
CHECKED = [p.relative_to(SMOKE).as_posix() for p in sorted(SMOKE.rglob("*"))
           if p.is_file() and p.suffix in (".json", ".jsonl", ".txt")
           and not p.name.endswith("summary.txt") and p.name != "README.md"]


def _json_paths(obj, prefix=()):
    """Every (pointer, leaf value) of a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            yield from _json_paths(v, prefix + (i,))
    else:
        yield prefix, obj


def _set(doc, pointer, value):
    for k in pointer[:-1]:
        doc = doc[k]
    doc[pointer[-1]] = value


def mutate(root: Path, rng: random.Random) -> tuple[str, bool]:
    """Apply one random mutation; returns (kind, whether it forges or destroys evidence)."""
    rel = rng.choice(CHECKED)
    path = root / rel
    kind = rng.choice(["delete", "truncate", "garbage", "number", "type", "swap_answers",
                       "forge_throughput", "forge_accuracy", "mllog_number"])
    if kind == "delete":
        path.unlink()
        return kind, True
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: rng.randrange(0, max(1, len(data) // 2))])
        return kind, True
    if kind == "garbage":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        return kind, True
    res = rng.choice(["Offline", "Server"])
    bench = rng.choice(["nano-react", "nano-codegen"])
    metric = "pass_within_bound" if bench == "nano-codegen" else "exact_match"
    base = root / "results/cpu" / bench / res
    if kind == "swap_answers":
        log = base / "accuracy/mlperf_log_accuracy.json"
        entries = json.loads(log.read_text())
        i, j = rng.sample(range(len(entries)), 2)
        while entries[i]["data"] == entries[j]["data"]:
            i, j = rng.sample(range(len(entries)), 2)
        entries[i]["data"], entries[j]["data"] = entries[j]["data"], entries[i]["data"]
        log.write_text(json.dumps(entries))
        return kind, True
    if kind == "forge_throughput":
        m = json.loads((base / "measurements.json").read_text())
        m["performance"]["value"] *= rng.choice([1.01, 1.5, 2, 10, 0.5])
        (base / "measurements.json").write_text(json.dumps(m))
        return kind, True
    if kind == "forge_accuracy":
        target = rng.choice(["accuracy/accuracy.json", "measurements.json"])
        doc = json.loads((base / target).read_text())
        part = doc if target.startswith("accuracy/") else doc["accuracy"]
        old = part[metric]
        part[metric] = rng.choice([v for v in (0.0, 0.5, 0.9, 0.99, 1.0, old - 0.01)
                                          if abs(v - old) > 1e-3])
        (base / target).write_text(json.dumps(doc))
        return kind, True
    if kind == "mllog_number":
        detail = base / "performance/run_1/mlperf_log_detail.txt"
        key = rng.choice(["result_samples_per_second", "result_scheduled_samples_per_sec",
                          "effective_qsl_rng_seed", "result_validity",
                          "effective_target_latency_ns" if res == "Server" else "result_validity",
                          "effective_schedule_rng_seed", "result_min_duration_met"])
        lines, hit = [], False
        for line in detail.read_text().splitlines():
            if line.startswith(":::MLLOG ") and f'"key": "{key}"' in line:
                rec = json.loads(line[9:])
                v = rec["value"]
                rec["value"] = ("INVALID" if v == "VALID" else False if v is True else
                                v * 3 + 1 if isinstance(v, (int, float)) else "x")
                line, hit = ":::MLLOG " + json.dumps(rec), True
            lines.append(line)
        detail.write_text("\n".join(lines) + "\n")
        return kind, hit
    # number / type: edit one leaf of a JSON file (damage; not always a forgery)
    if not rel.endswith(".json"):
        return "noop", False
    doc = json.loads(path.read_text())
    leaves = list(_json_paths(doc))
    if not leaves or not leaves[0][0]:
        return "noop", False
    pointer, value = rng.choice(leaves)
    new = (rng.choice(["7", None, [], {}, -1, True]) if kind == "type" else
           (value * 2 + 1 if isinstance(value, (int, float)) and not isinstance(value, bool)
            else "x"))
    _set(doc, pointer, new)
    path.write_text(json.dumps(doc))
    return kind, False


def _fuzz(tmp_path: Path, seed: int, cases: int) -> None:
    rng = random.Random(seed)
    counts, caught = Counter(), Counter()
    for case in range(cases):
        root = tmp_path / f"case{case}"
        shutil.copytree(SMOKE, root)
        kind, forged = mutate(root, rng)
        report = check_path(root, "smoke")  # must not raise
        assert "X901" not in report.rule_ids(), [f.to_dict() for f in report.findings]
        counts[kind] += 1
        if forged:
            assert not report.valid, (kind, case)
            caught[kind] += 1
        shutil.rmtree(root)
    print(f"seed {seed}: cases {dict(counts)}, forgeries caught {dict(caught)}")


@pytest.mark.parametrize("chunk", range(4))
def test_fuzzed_submissions_never_crash_and_forgeries_are_caught(tmp_path, chunk):
    _fuzz(tmp_path, 1000 + chunk, N_CASES // 4)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(4))
def test_many_more_fuzzed_submissions(tmp_path, chunk):
    _fuzz(tmp_path, 2000 + chunk, N_CASES_SLOW // 4)
