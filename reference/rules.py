"""The run rules as data: `rules.yaml`, read by the harness and by the checker.

    from reference.rules import load_rules
    rules = load_rules()
    rules.profile("official").min_duration_ms
    rules.benchmark("nano-react").quality_target
    rules.benchmark("nano-react").splits["generalisation"].quality_target
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
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


class Section(Mapping):
    """A rules.yaml section as a frozen dataclass: built by `typed`, which refuses an unknown
    key, a missing one and a value of the wrong type with one clear RulesError at load, so a
    typo never surfaces partway through a check. Read it by attribute (`rules.checker.
    max_trace_records`); it is also a read-only mapping of its fields, for code written
    against the sections as dicts."""

    def __getitem__(self, key: str):
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _coerce(value, tp, where: str):
    """`value` as the annotated type `tp` (bool, int, float, str, Section subclasses, and
    dict / list / tuple / Optional of them), or a RulesError naming `where`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        return _coerce(value, tp, where)
    if isinstance(tp, type) and issubclass(tp, Section):
        return typed(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise RulesError(f"rules.yaml {where}: expected a mapping, found {value!r}")
        kt, vt = args or (str, typing.Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise RulesError(f"rules.yaml {where}: expected a list, found {value!r}")
        vt = args[0] if args else typing.Any
        return origin(_coerce(v, vt, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is typing.Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RulesError(f"rules.yaml {where}: expected true or false, found {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (tp is int and value != int(value)):
            raise RulesError(f"rules.yaml {where}: expected "
                             f"{'an integer' if tp is int else 'a number'}, found {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise RulesError(f"rules.yaml {where}: expected a string, found {value!r}")
        return str(value)
    raise TypeError(f"rules.py: no coercion for {tp!r} ({where})")


def typed(cls, doc, where: str):
    """A Section subclass from a rules.yaml mapping: each field from its key (a field with a
    default may be left out), no unknown key, each value of its field's type."""
    if not isinstance(doc, dict):
        raise RulesError(f"rules.yaml {where}: expected a mapping, found {doc!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise RulesError(f"rules.yaml {where}: unknown key {', '.join(map(str, unknown))} "
                         f"(known: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if n not in doc and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RulesError(f"rules.yaml {where}: missing {', '.join(missing)}")
    return cls(**{n: _coerce(v, hints[n], f"{where}.{n}") for n, v in doc.items()})


@dataclass(frozen=True)
class DeviceClass(Section):
    """checker.device_classes.<class>: the expected bound of one kind of device (T610, the
    leaderboard's plausibility flag)."""
    memory_bandwidth_gbs: float
    max_tokens_per_generation_ms: float
    match: tuple[str, ...] = ()         # accelerator names that are this class (none: cpu)


@dataclass(frozen=True)
class Checker(Section):
    """The checker's limits and tolerances (rules.md section 9)."""
    max_trace_records: int
    max_reexecuted_tool_calls: int
    max_code_patch_bytes: int
    reproduction_min_ratio: float
    max_sandbox_s: float
    max_sandbox_s_leaderboard: float
    closed_max_answer_mismatch_fraction: float
    rate_tolerance_fraction: float
    server_rate_tolerance_fraction: float
    replay_max_mismatch_fraction: float
    leaderboard_replay: int
    max_duplicate_episode_fraction: float
    plausibility_max_ratio: float
    plausibility_max_ratio_accelerator: float
    reference_results: dict[str, dict[str, float]]
    device_classes: dict[str, DeviceClass]


@dataclass(frozen=True)
class Sandbox(Section):
    """The code sandbox's limits per program."""
    cpu_s: float
    wall_s: float
    memory_mb: int
    max_output_chars: int


@dataclass(frozen=True)
class Test01(Section):
    accuracy_log_probability: float
    accuracy_log_rng_seed: int
    max_mismatch_fraction: float


@dataclass(frozen=True)
class Test04(Section):
    sample_index: int
    max_speedup: float
    max_trace_speedup: float


@dataclass(frozen=True)
class Test09(Section):
    tolerance_fraction: float


@dataclass(frozen=True)
class Audits(Section):
    """The audit runs written beside each result (rules.md section 4.1)."""
    TEST01: Test01
    TEST04: Test04
    TEST09: Test09


@dataclass(frozen=True)
class ScenarioRule(Section):
    """benchmarks.<name>.scenarios.<scenario>: the metric and, where one applies, the latency
    bound."""
    metric: str
    latency_percentile: float | None = None
    target_latency_ms: int | None = None
    lower_is_better: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    eligible: bool
    min_duration_ms: int
    min_query_count: dict
    accuracy_sample_count: int | None  # None: every sample
    audit_min_duration_ms: int
    audit_min_query_count: dict         # per scenario: queries each audit run issues at least
    # share of the system's server_target_qps a Server run offers
    server_qps_fraction: float = 1.0
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
    audits: Audits
    path: Path
    loadgen_version: str                # the pinned LoadGen build ("6.0.17 @ d6147c7eb7")
    checker: Checker                    # the checker's limits and tolerances
    sandbox: Sandbox                    # the code sandbox's per-program limits

    def benchmark(self, name: str) -> Benchmark:
        if name not in self.benchmarks:
            raise RulesError(f"unknown benchmark {name!r}; known: {', '.join(self.benchmarks)}")
        return self.benchmarks[name]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise RulesError(f"unknown profile {name!r}; known: {', '.join(self.profiles)}")
        return self.profiles[name]


def _mapping(doc, where: str) -> dict:
    if not isinstance(doc, dict):
        raise RulesError(f"rules.yaml {where}: expected a mapping, found {doc!r}")
    return doc


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
                scenarios={sc: typed(ScenarioRule, r, f"benchmarks.{name}.scenarios.{sc}")
                           for sc, r in _mapping(b["scenarios"], f"benchmarks.{name}.scenarios"
                                                 ).items()},
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
        return Rules(int(doc["version"]), seeds, benchmarks, profiles,
                     typed(Audits, doc["audits"], "audits"), Path(path),
                     str(doc["loadgen"]["version"]), typed(Checker, doc["checker"], "checker"),
                     typed(Sandbox, doc["sandbox"], "sandbox"))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RulesError(f"{path}: malformed rules ({type(err).__name__}: {err})") from None
