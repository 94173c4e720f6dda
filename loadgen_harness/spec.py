"""Typed specs of the harness: how one benchmark x scenario is tuned, and one LoadGen run.

    tuning = Tuning.of(system_doc["tuning"], "nano-react", "Offline")   # systems/<system>.yaml
    spec = RunSpec(benchmark="nano-react", scenario="Offline", mode="PerformanceOnly",
                   out_dir=..., checkpoint=..., eval_set=..., settings={...}, **tuning.run_fields())
    run_test(spec, timeout_s=300)         # loadgen_harness.runner: the spec travels as JSON

`RunSpec` is what `make submission`, `bench` and the report's sweep hand to the child process
(loadgen_harness.child), written once as run_spec.json beside the run's logs; an unknown or
missing field is an error, never a silent default. `Tuning` holds the defaults a system file
may leave out (max_batch per scenario; draft, which is 0 when a system file does not ask for
drafts; the backend, `local` (engine threads in the run's process) unless the file asks for
`ray`: one engine per Ray actor, loadgen_harness.ray_pool).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# Rows of the engine's KV cache per scenario when a system file does not say (Offline: as many
# as fit the throughput sweet spot on the reference CPU; Server: half, for latency; one stream).
DEFAULT_MAX_BATCH = {"Offline": 64, "Server": 32, "SingleStream": 1}


class SpecError(ValueError):
    """A run spec or tuning that is malformed."""


@dataclass(frozen=True)
class Tuning:
    """One benchmark x scenario's tuning from a system file."""
    device: str
    workers: int
    threads: int
    max_batch: int
    loadgen: dict = field(default_factory=dict)   # the scenario's LoadGen knobs (expected qps...)
    draft: int = 0                                # tokens drafted per row and decode step
    backend: str = "local"        # local: engine threads in the run's process | ray: actors
    replicas: int = 1             # ray: engine replicas, each a Ray actor with its own engine
    num_cpus: float = 1.0         # ray: CPUs reserved per replica
    num_gpus: float = 0.0         # ray: GPUs per replica (Ray sets its visible device)
    cluster: str = "local"        # ray: local (a cluster of this machine) | a cluster's ADDRESS
    routing: str = "least_loaded"  # ray: least_loaded | round_robin (loadgen_harness.ray_pool)

    @classmethod
    def of(cls, tuning: dict, benchmark: str, scenario: str) -> "Tuning":
        scen = (tuning.get("benchmarks") or {}).get(benchmark, {}).get(scenario)
        if not scen:
            raise SpecError(f"the system file has no tuning for {benchmark} {scenario}")
        knobs = {k: v for k, v in scen.items() if k != "max_batch"}
        return cls(tuning["device"], int(tuning.get("workers", 1)), int(tuning.get("threads", 1)),
                   int(scen.get("max_batch", DEFAULT_MAX_BATCH[scenario])), knobs,
                   int(tuning.get("draft", 0)), **backend_fields(tuning))

    def run_fields(self) -> dict:
        """The RunSpec fields this tuning sets."""
        out = {"device": self.device, "workers": self.workers, "threads": self.threads,
               "max_batch": self.max_batch, "draft": self.draft}
        if self.backend != "local":  # a local run's run_spec.json stays as it was
            out.update(backend=self.backend, replicas=self.replicas, num_cpus=self.num_cpus,
                       num_gpus=self.num_gpus, cluster=self.cluster, routing=self.routing)
        return out


def backend_fields(tuning: dict) -> dict:
    """A system file's backend keys (tuning.backend and, for ray, its replicas, resources,
    cluster and routing) as Tuning / RunSpec fields; {} for the local backend."""
    if tuning.get("backend", "local") == "local":
        return {}
    threads = int(tuning.get("threads", 1))
    return {"backend": tuning["backend"], "replicas": int(tuning.get("replicas", 1)),
            "num_cpus": float(tuning.get("num_cpus", threads)),
            "num_gpus": float(tuning.get("num_gpus", 0)),
            "cluster": str(tuning.get("cluster", "local")),
            "routing": str(tuning.get("routing", "least_loaded"))}


@dataclass
class RunSpec:
    """One LoadGen test run in a child process."""
    benchmark: str
    scenario: str                    # Offline | Server | SingleStream
    mode: str                        # AccuracyOnly | PerformanceOnly
    out_dir: str
    checkpoint: str
    eval_set: str
    settings: dict                   # LoadGen TestSettings fields
    device: str = "cpu"
    workers: int = 1
    threads: int = 1
    max_batch: int | None = None     # None: the scenario's DEFAULT_MAX_BATCH
    draft: int = 0                   # tokens drafted per row and decode step (reference.engine)
    verifier_workers: int = 2
    performance_sample_count: int | None = None   # None: every task
    rules: str | None = None         # a rules.yaml other than the suite's (tests)
    fault: str | None = None         # fault injection for the watchdog tests: raise | hang
    backend: str = "local"           # local | ray (Tuning's fields of the same names)
    replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    cluster: str = "local"
    routing: str = "least_loaded"

    def __post_init__(self):
        for name in ("out_dir", "checkpoint", "eval_set", "rules"):
            if isinstance(getattr(self, name), Path):
                setattr(self, name, str(getattr(self, name)))
        if self.max_batch is None:
            self.max_batch = DEFAULT_MAX_BATCH.get(self.scenario, 1)

    @classmethod
    def from_dict(cls, doc: dict) -> "RunSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise SpecError(f"unknown run spec field(s): {', '.join(unknown)}")
        try:
            return cls(**doc)
        except TypeError as err:
            raise SpecError(f"bad run spec: {err}") from None

    @classmethod
    def read(cls, path: Path) -> "RunSpec":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")
