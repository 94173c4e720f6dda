"""The run rules as data: `rules.yaml`, read by the harness and by the checker.

    from reference.rules import load_rules
    rules = load_rules()
    rules.profile("official").min_duration_ms
    rules.benchmark("nano-react").quality_target
    rules.benchmark("nano-react").splits["generalisation"].quality_target
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from reference.yamlio import load_yaml

ROOT = Path(__file__).resolve().parent.parent
RULES_PATH = ROOT / "rules.yaml"
SCHEMA_DIR = Path(__file__).parent / "schemas"   # the trace and system-description schemas
SCENARIOS = ("Offline", "Server", "SingleStream")


class RulesError(Exception):
    """rules.yaml is missing something the harness or the checker needs."""


@dataclass(frozen=True)
class Profile:
    name: str
    eligible: bool
    min_duration_ms: int
    min_query_count: dict
    accuracy_sample_count: int | None  # None: every sample
    audit_min_duration_ms: int
    audit_min_query_count: dict         # per scenario: queries each audit run issues at least
    server_qps_fraction: float = 1.0    # share of the system's server_target_qps a Server run offers
    # at most this share of the Offline rate the same submission has just measured on this
    # machine (None: the system file's rate alone); a busy machine's Server offer falls with it
    server_qps_of_offline: float | None = None


def _subset_target(results: Path, fraction: float, target: float, indices) -> float:
    """The quality target for a run that scored these sample indices: the target fraction of
    the reference checkpoint's quality on the same samples (all samples: the stated target)."""
    correct = _reference_correct(results)
    idx = [i for i in set(indices) if 0 <= i < len(correct)]
    if not idx or len(idx) == len(correct):
        return target
    return round(fraction * sum(correct[i] for i in idx) / len(idx), 4)


@dataclass(frozen=True)
class Split:
    """A benchmark's further frozen set, scored in an accuracy run of its own
    (`accuracy/<name>/`) against its own target: `generalisation` holds words never trained
    on and numbers wider than training's (issue 12). Same metric as the benchmark."""
    name: str
    eval_set: Path
    eval_set_sha256: str
    eval_set_size: int
    reference_results: Path
    quality_reference: float
    quality_target_fraction: float

    @property
    def quality_target(self) -> float:
        return round(self.quality_reference * self.quality_target_fraction, 4)

    def subset_target(self, indices) -> float:
        return _subset_target(self.reference_results, self.quality_target_fraction,
                              self.quality_target, indices)


@dataclass(frozen=True)
class Executor:
    """A model that turns a planner step into an exact call, fixed by its checkpoint's SHA-256."""
    name: str
    checkpoint: Path
    checkpoint_sha256: str


@dataclass(frozen=True)
class Benchmark:
    name: str
    eval_set: Path
    eval_set_sha256: str
    eval_set_size: int
    reference_checkpoint: Path
    reference_checkpoint_sha256: str
    max_steps: int
    max_step_tokens: int                     # tokens one agent step may take
    reference_results: Path
    quality_metric: str
    quality_reference: float
    quality_target_fraction: float
    scenarios: dict
    reference_mean_generated_tokens: float   # TEST09's reference
    splits: dict = field(default_factory=dict)  # name -> Split (each its own accuracy run)
    workload: str | None = None  # module with a WORKLOAD object; None: a built-in workload
    # further quality figures the accuracy run's trace gives, each bounded: name -> ("max" or
    # "min", limit) (nano-planner: bad_task_rate max, completion_rate min)
    quality_bounds: dict = field(default_factory=dict)
    # model executors besides the built-in one: name -> Executor (nano-planner: the caller)
    executors: dict = field(default_factory=dict)

    @property
    def quality_target(self) -> float:
        return round(self.quality_reference * self.quality_target_fraction, 4)

    def subset_target(self, indices) -> float:
        """The quality target for a run that scored these sample indices: the target fraction
        of the reference checkpoint's exact match on the same samples."""
        return _subset_target(self.reference_results, self.quality_target_fraction,
                              self.quality_target, indices)

    def lower_is_better(self, scenario: str) -> bool:
        """Whether the scenario's metric ranks lower first (a latency)."""
        return bool(self.scenarios.get(scenario, {}).get("lower_is_better", False))

    def metric(self, scenario: str) -> str:
        return self.scenarios[scenario]["metric"]

    def target_latency_ns(self, scenario: str) -> int | None:
        ms = self.scenarios.get(scenario, {}).get("target_latency_ms")
        return None if ms is None else int(ms * 1e6)


@lru_cache(maxsize=4)
def _reference_correct(path: Path) -> tuple[bool, ...]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return tuple(bool(r["correct"]) for r in sorted(rows, key=lambda r: r["qsl_idx"]))


@dataclass(frozen=True)
class Rules:
    version: int
    official_seeds: dict
    benchmarks: dict
    profiles: dict
    audits: dict
    path: Path
    loadgen_version: str = ""           # the pinned LoadGen build ("6.0.17 @ d6147c7eb7")
    checker: dict | None = None         # the checker's limits and tolerances
    sandbox: dict | None = None         # the code sandbox's per-program limits

    def benchmark(self, name: str) -> Benchmark:
        if name not in self.benchmarks:
            raise RulesError(f"unknown benchmark {name!r}; known: {', '.join(self.benchmarks)}")
        return self.benchmarks[name]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise RulesError(f"unknown profile {name!r}; known: {', '.join(self.profiles)}")
        return self.profiles[name]


def _bounds(doc: dict) -> dict:
    out = {}
    for name, b in doc.items():
        (kind, limit), = dict(b).items()  # exactly one of max / min
        if kind not in ("max", "min"):
            raise ValueError(f"quality bound {name}: {kind!r} is not max or min")
        out[name] = (kind, float(limit))
    return out


def load_rules(path: Path = RULES_PATH) -> Rules:
    doc = load_yaml(path)
    try:
        benchmarks = {}
        for name, b in doc["benchmarks"].items():
            q = b["quality"]
            benchmarks[name] = Benchmark(
                name=name, eval_set=ROOT / b["eval_set"], eval_set_sha256=b["eval_set_sha256"],
                eval_set_size=int(b["eval_set_size"]),
                reference_checkpoint=ROOT / b["reference_checkpoint"],
                reference_checkpoint_sha256=b["reference_checkpoint_sha256"],
                max_steps=int(b["max_steps"]), max_step_tokens=int(b["max_step_tokens"]),
                reference_results=ROOT / b["reference_results"], quality_metric=q["metric"],
                quality_reference=float(q["reference_value"]),
                quality_target_fraction=float(q["target_fraction"]),
                scenarios=dict(b["scenarios"]),
                reference_mean_generated_tokens=float(b["reference_mean_generated_tokens"]),
                splits={sname: Split(
                    name=sname, eval_set=ROOT / sp["eval_set"],
                    eval_set_sha256=sp["eval_set_sha256"], eval_set_size=int(sp["eval_set_size"]),
                    reference_results=ROOT / sp["reference_results"],
                    quality_reference=float(sp["quality"]["reference_value"]),
                    quality_target_fraction=float(sp["quality"]["target_fraction"]))
                    for sname, sp in (b.get("splits") or {}).items()},
                workload=b.get("workload"),
                quality_bounds=_bounds(q.get("bounds") or {}),
                executors={ename: Executor(ename, ROOT / e["checkpoint"], e["checkpoint_sha256"])
                           for ename, e in (b.get("executors") or {}).items()})
        profiles = {}
        for name, p in doc["profiles"].items():
            acc = p["accuracy_sample_count"]
            fraction = float(p.get("server_qps_fraction", 1.0))
            if not 0.0 < fraction <= 1.0:
                raise RulesError(f"profiles.{name}.server_qps_fraction must be in (0, 1], "
                                 f"found {fraction}")
            of_offline = p.get("server_qps_of_offline")
            if of_offline is not None:
                of_offline = float(of_offline)
                if not 0.0 < of_offline <= 1.0:
                    raise RulesError(f"profiles.{name}.server_qps_of_offline must be in (0, 1], "
                                     f"found {of_offline}")
            profiles[name] = Profile(name, bool(p["eligible"]), int(p["min_duration_ms"]),
                                     dict(p["min_query_count"]),
                                     None if acc == "all" else int(acc),
                                     int(p["audit_min_duration_ms"]),
                                     dict(p["audit_min_query_count"]), fraction, of_offline)
        seeds = {k: int(v) for k, v in doc["loadgen"]["official_seeds"].items()}
        audits = dict(doc["audits"])
        for name in ("TEST01", "TEST04", "TEST09"):
            audits[name] = dict(audits[name])
        audits["TEST09"]["tolerance_fraction"] = float(audits["TEST09"]["tolerance_fraction"])
        return Rules(int(doc["version"]), seeds, benchmarks, profiles, audits, Path(path),
                     str(doc["loadgen"]["version"]), dict(doc["checker"]),
                     dict(doc["sandbox"]))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RulesError(f"{path}: malformed rules ({type(err).__name__}: {err})") from None
