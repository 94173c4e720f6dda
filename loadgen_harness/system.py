"""Hardware declarations (`systems/<name>.yaml`) and the probe of the machine a run is on.

    python -m loadgen_harness.system cpu        # validate systems/cpu.yaml and compare it
                                                # with this machine

A declaration is validated by a JSON Schema (types, enums, units), then compared with what
the probe finds: CPU model, core count, memory, accelerator and its memory (through torch),
OS, Python, torch and LoadGen versions. A contradiction (declared an A100, no such GPU here)
stops `make submission` unless the user overrides it explicitly; the override is recorded.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import jsonschema

from reference.yamlio import YamlError, load_yaml
from reference.rules import SCHEMA_DIR

SYSTEMS_DIR = Path(__file__).resolve().parent.parent / "systems"
SCHEMA_PATH = SCHEMA_DIR / "system.schema.json"
MEMORY_TOLERANCE = 0.10  # declared vs probed memory may differ this much (firmware reserves)


class DeclarationError(Exception):
    """A system declaration that is missing, malformed, or contradicts the machine."""


@lru_cache(maxsize=1)
def _validator():
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def schema_errors(doc) -> list[str]:
    """Every schema violation as 'path: message' (empty when valid)."""
    errs = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errs]


def load_system(name: str, systems_dir: Path = SYSTEMS_DIR) -> dict:
    if not name or "/" in name or name.startswith("."):
        raise DeclarationError(f"bad system name {name!r}")
    path = systems_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in systems_dir.glob("*.yaml"))) or "none"
        raise DeclarationError(f"no declaration {path} (known systems: {known})")
    try:
        doc = load_yaml(path)
    except YamlError as err:
        raise DeclarationError(str(err)) from None
    errors = schema_errors(doc)
    if errors:
        raise DeclarationError(f"{path} does not match the declaration schema:\n  "
                               + "\n  ".join(errors))
    return doc


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 2)
    except (ValueError, OSError, AttributeError):
        return 0.0


def probe() -> dict:
    """What this machine is, as far as the run can see."""
    import torch
    accel = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            accel.append({"name": p.name, "memory_gb": round(p.total_memory / 2**30, 2)})
    return {
        "host_processor_model_name": _cpu_model(),
        "host_processor_core_count": len(os.sched_getaffinity(0)),
        "host_memory_capacity_gb": _memory_gb(),
        "accelerators": accel,
        "operating_system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "loadgen": metadata.version("mlcommons-loadgen"),
        "machine": platform.machine(),
    }


def mismatches(decl: dict, found: dict) -> list[str]:
    """Where the declaration contradicts the probe (empty when they agree)."""
    out = []
    if decl["host_processor_model_name"] != "any" and \
            decl["host_processor_model_name"] != found["host_processor_model_name"]:
        out.append(f"CPU: declared {decl['host_processor_model_name']!r}, "
                   f"found {found['host_processor_model_name']!r}")
    if decl["host_processor_core_count"] != found["host_processor_core_count"]:
        out.append(f"cores: declared {decl['host_processor_core_count']}, "
                   f"found {found['host_processor_core_count']}")
    mem_d, mem_f = decl["host_memory_capacity_gb"], found["host_memory_capacity_gb"]
    if abs(mem_d - mem_f) > MEMORY_TOLERANCE * max(mem_d, mem_f):
        out.append(f"memory: declared {mem_d} GiB, found {mem_f} GiB")
    accel = found["accelerators"]
    n = decl["accelerators_per_node"]
    if n != len(accel):
        names = ", ".join(a["name"] for a in accel) or "none"
        out.append(f"accelerators: declared {n} x {decl['accelerator_model_name']!r}, "
                   f"found {len(accel)} ({names})")
    elif n:
        for a in accel:
            if decl["accelerator_model_name"] not in a["name"]:
                out.append(f"accelerator: declared {decl['accelerator_model_name']!r}, "
                           f"found {a['name']!r}")
            m = decl["accelerator_memory_capacity_gb"]
            if abs(m - a["memory_gb"]) > MEMORY_TOLERANCE * max(m, a["memory_gb"]):
                out.append(f"accelerator memory: declared {m} GiB, found {a['memory_gb']} GiB")
    fw = decl["framework"].split()[1]
    if not found["torch"].startswith(fw):
        out.append(f"framework: declared torch {fw}, found torch {found['torch']}")
    return out


def tuning_problems(doc: dict, found: dict, benchmarks, scenarios=None) -> list[str]:
    """Where a declaration's tuning cannot run on the probed machine or names what rules.yaml
    does not know; one sentence each (empty when none). `make submission`, this module's
    pre-check and the checker's S203 all ask this one function (rules.md section 5)."""
    tuning = doc.get("tuning") if isinstance(doc.get("tuning"), dict) else {}
    out = []
    known = set(benchmarks)
    for name in sorted(k for k in (tuning.get("benchmarks") or {}) if k not in known):
        near = difflib.get_close_matches(name, sorted(known), n=1)
        out.append(f"tuning.benchmarks.{name}: no such benchmark"
                   + (f" (did you mean {near[0]}?)" if near else
                      f" (known: {', '.join(sorted(known))})"))
    if scenarios is not None:
        for b, per in sorted((tuning.get("benchmarks") or {}).items()):
            for scen in sorted(k for k in (per or {}) if k not in scenarios):
                out.append(f"tuning.benchmarks.{b}.{scen}: no such scenario "
                           f"(known: {', '.join(scenarios)})")
    accel = found.get("accelerators")
    if tuning.get("device") == "cuda" and isinstance(accel, list) and not accel:
        out.append("tuning.device is cuda, but this machine has no GPU")
    cores = found.get("host_processor_core_count")
    if tuning.get("backend") == "ray":
        if tuning.get("cluster", "local") == "local":  # a remote cluster's nodes: not probed here
            out += _ray_problems(tuning, cores, accel)
        return out
    used = tuning.get("workers", 1), tuning.get("threads", 1)
    if (isinstance(cores, int) and all(_count(u) for u in used)
            and used[0] * used[1] > max(cores, 1)):
        out.append(f"tuning uses {used[0]} workers x {used[1]} threads = {used[0] * used[1]} "
                   f"cores, but the machine has {cores}")
    return out


def _count(u) -> bool:
    return isinstance(u, (int, float)) and not isinstance(u, bool)


def _ray_problems(tuning: dict, cores, accel) -> list[str]:
    """A local Ray cluster is this machine: its replicas' CPUs (and GPUs) must fit it."""
    out = []
    n, cpus = tuning.get("replicas", 1), tuning.get("num_cpus", tuning.get("threads", 1))
    gpus = tuning.get("num_gpus", 0)
    if isinstance(cores, int) and _count(n) and _count(cpus) and n * cpus > max(cores, 1):
        out.append(f"tuning uses {n} Ray replicas x {cpus:g} CPUs = {n * cpus:g} cores, but the "
                   f"machine has {cores}")
    if isinstance(accel, list) and _count(n) and _count(gpus) and n * gpus > len(accel):
        out.append(f"tuning uses {n} Ray replicas x {gpus:g} GPUs = {n * gpus:g} GPUs, but the "
                   f"machine has {len(accel)}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Validate a system declaration against this machine.")
    ap.add_argument("system", help="name of systems/<name>.yaml")
    args = ap.parse_args(argv)
    try:
        doc = load_system(args.system)
    except DeclarationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from reference.rules import SCENARIOS, load_rules
    found = probe()
    bad = mismatches(doc["declaration"], found)
    problems = tuning_problems(doc, found, load_rules().benchmarks, SCENARIOS)
    print(json.dumps({"probe": found, "mismatches": bad, "tuning_problems": problems}, indent=1))
    for line in bad + problems:
        print(f"error: systems/{args.system}.yaml: {line}", file=sys.stderr)
    if not bad and not problems:
        print(f"systems/{args.system}.yaml describes this machine", file=sys.stderr)
    return 1 if bad or problems else 0


if __name__ == "__main__":
    sys.exit(main())
