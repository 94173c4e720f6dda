"""S2xx: the hardware declaration, against its schema and the probe (rules.md section 6)."""
from __future__ import annotations

from compliance.checks import err, warn
from compliance.context import Ctx
# loadgen_harness.system (and jsonschema, a tenth of the checker's start-up) is imported by the
# rules that use it, which run in compliance.parallel's child: off the parent's path

PROBE_FIELDS = {"host_processor_model_name": str, "host_processor_core_count": int,
                "host_memory_capacity_gb": (int, float), "accelerators": list, "torch": str,
                "loadgen": str}


def _system():
    import loadgen_harness.system as system
    return system


def _doc(ctx: Ctx, s: str):
    d, _ = ctx.tree.json(f"systems/{s}.json")
    return d if isinstance(d, dict) else None


def declaration_schema(ctx: Ctx, rule: str):
    """systems/<system>.json holds a declaration that matches the schema."""
    for s in ctx.systems:
        rel = f"systems/{s}.json"
        d, problem = ctx.tree.json(rel)
        if d is None:
            if ctx.tree.kind(rel) != "missing":  # a missing file is L101's finding
                yield err(rule, rel, f"declaration unreadable: {problem}")
            continue
        if not isinstance(d, dict):
            yield err(rule, rel, "declaration is not a JSON object", found=type(d).__name__)
            continue
        decl = {k: d.get(k) for k in ("schema_version", "declaration", "tuning")}
        for e in _system().schema_errors(decl):
            path, _, msg = e.partition(": ")
            yield err(rule, rel, f"declaration does not match the schema: {msg}",
                      location=path, hint="see reference/schemas/system.schema.json")


def declaration_matches_probe(ctx: Ctx, rule: str):
    """the declaration agrees with what the run probed, or the override is recorded."""
    for s in ctx.systems:
        rel = f"systems/{s}.json"
        d = _doc(ctx, s)
        if d is None or _system().schema_errors(
                {k: d.get(k) for k in ("schema_version", "declaration", "tuning")}):
            continue  # S201 reports it
        probe = d.get("probe")
        if not isinstance(probe, dict) or any(
                not isinstance(probe.get(k), t) or isinstance(probe.get(k), bool)
                for k, t in PROBE_FIELDS.items()):
            yield err(rule, rel, "the machine probe is missing or malformed", location="/probe",
                      expected=", ".join(PROBE_FIELDS),
                      hint="the probe is written by make submission")
            continue
        try:
            found = _system().mismatches(d["declaration"], probe)
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            yield err(rule, rel, f"the machine probe is malformed ({type(e).__name__})",
                      location="/probe")
            continue
        override = d.get("mismatch_override") is True
        for m in found:
            if override:
                yield warn(rule, rel, f"declaration contradicts the probe (override recorded): {m}",
                           location="/declaration")
            else:
                yield err(rule, rel, f"declaration contradicts the probe: {m}",
                          location="/declaration", hint="declare the machine the run used")


def probe_consistent(ctx: Ctx, rule: str):
    """the machine probe agrees with itself and with the run: accelerators only with a
    CUDA build of torch that saw them and a tuning that used them; the cores the tuning used
    (workers x threads) no more than the probe found, device cuda only with a GPU, tuning
    only for benchmarks of rules.yaml (the pre-check's own rule); the torch and LoadGen it names
    are the ones the traces' run could have used. A probe edited to show other hardware is
    caught."""
    for s in ctx.systems:
        rel = f"systems/{s}.json"
        d = _doc(ctx, s)
        probe = d.get("probe") if d else None
        if not isinstance(probe, dict):
            continue  # S202
        accel = probe.get("accelerators")
        tuning = d.get("tuning") if isinstance(d.get("tuning"), dict) else {}
        torch_v = probe.get("torch")
        problems = []
        if isinstance(accel, list) and accel:
            if probe.get("cuda") in (None, "", False):
                problems.append("accelerators listed, but torch saw no CUDA")
            if isinstance(torch_v, str) and torch_v.endswith("+cpu"):
                problems.append(f"accelerators listed, but torch {torch_v} is a CPU-only build")
            if tuning.get("device") == "cpu":
                problems.append("accelerators listed, but the runs used device cpu")
        # the pre-check's own sentences (loadgen_harness.system.tuning_problems): cores the
        # tuning used beyond the probe's, cuda without a GPU, unknown benchmarks
        problems += _system().tuning_problems({"tuning": tuning}, probe, ctx.rules.benchmarks)
        for p in problems:
            yield err(rule, rel, f"the machine probe contradicts itself: {p}",
                      location="/probe", hint="the probe is written by make submission, "
                      "never by hand")
