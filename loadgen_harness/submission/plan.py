"""The plan of a submission: which LoadGen runs, with which settings, and the Server rate each
benchmark offers (and, after a run, why its latency missed the bound and what rate to try)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadgen_harness.logs import read_detail

STARTUP_S = 8.0  # a run's process start (torch import, model load), measured about 4 s


class SubmissionError(Exception):
    """A user-facing reason why no submission was written."""


@dataclass
class RunPlan:
    benchmark: str
    scenario: str
    mode: str            # AccuracyOnly | PerformanceOnly
    rel_dir: str         # accuracy | accuracy/<split> | performance/run_1 | audit/<TEST>
    settings: dict
    expected_s: float
    split: str | None = None   # AccuracyOnly on a further frozen set (rules.yaml `splits`)

    @property
    def label(self) -> str:
        kind = (f"accuracy ({self.split})" if self.split else
                "accuracy" if self.mode == "AccuracyOnly" else
                self.rel_dir.split("/")[-1] if self.rel_dir.startswith("audit") else "performance")
        return f"{self.benchmark} {self.scenario} {kind}"


def loadgen_settings(rules, bench, scenario: str, mode: str, profile, tuning: dict) -> dict:
    s = dict(rules.official_seeds)
    s["min_duration_ms"] = profile.min_duration_ms
    s["min_query_count"] = int(profile.min_query_count[scenario])
    if scenario == "Offline":
        s["offline_expected_qps"] = float(tuning["offline_expected_qps"])
    elif scenario == "Server":
        s["server_target_qps"] = qps_hint(scenario, tuning, profile)
        s["server_target_latency_ns"] = bench.target_latency_ns("Server")
        s["server_target_latency_percentile"] = \
            bench.scenarios["Server"]["latency_percentile"] / 100
    elif scenario == "SingleStream":
        s["single_stream_expected_latency_ns"] = \
            int(tuning["single_stream_expected_latency_ms"] * 1e6)
        s["single_stream_target_latency_percentile"] = \
            bench.scenarios["SingleStream"]["latency_percentile"] / 100
    if mode == "AccuracyOnly" and profile.accuracy_sample_count:
        s["accuracy_sample_count_override"] = profile.accuracy_sample_count
    return s


def audit_settings(rules, profile, scenario: str = "Offline") -> dict[str, dict]:
    """LoadGen settings that turn a performance run into each audit run (rules.md 4.1: each
    audit run lasts the profile's audit duration and issues its audit query count; a Server
    audit needs 459 queries before LoadGen's early stopping can call it VALID)."""
    a = rules.audits
    short = {"min_duration_ms": profile.audit_min_duration_ms,
             "min_query_count": int(profile.audit_min_query_count[scenario])}
    return {
        "TEST01": {**short, "accuracy_log_probability": a["TEST01"]["accuracy_log_probability"],
                   "accuracy_log_rng_seed": a["TEST01"]["accuracy_log_rng_seed"]},
        "TEST04": {**short, "performance_issue_same": True,
                   "performance_issue_same_index": a["TEST04"]["sample_index"]},
    }


def audit_breaks_rules(detail: dict, profile, scenario: str) -> str:
    """Why an audit run's detail log breaks section 4.1 ('' if it does not): the checker's
    A504 holds every audit run to the same (VALID, duration, samples issued). A Server or
    SingleStream audit whose only failure is its latency counts: audits judge answers and
    caching, and a busy machine's latency tail says nothing about either."""
    latency_only = (scenario != "Offline" and detail.get("result_min_duration_met") is True
                    and detail.get("result_min_queries_met") is True)
    if detail.get("result_validity") != "VALID" and not latency_only:
        return f"LoadGen says {detail.get('result_validity')}: " \
               f"{detail.get('result_invalid_reason') or 'see its summary'}"
    n = ((detail.get("generated_query_count") or 0)
         * (detail.get("generated_samples_per_query") or 0))
    if n < profile.audit_min_query_count[scenario]:
        return f"{n} samples issued, fewer than {profile.audit_min_query_count[scenario]}"
    if not detail.get("result_min_duration_met"):
        return "shorter than its min duration"
    return ""


def qps_hint(scenario: str, tuning: dict, profile) -> float:
    if scenario == "Offline":
        return float(tuning["offline_expected_qps"])
    if scenario == "Server":  # the profile's share of the system's rate (smoke: a margin)
        return float(tuning["server_target_qps"]) * profile.server_qps_fraction
    return 1000.0 / float(tuning["single_stream_expected_latency_ms"])


def plan_runs(rules, profile, benchmarks, scenarios, tuning_all: dict) -> list[RunPlan]:
    plans = []
    for bname in benchmarks:
        bench = rules.benchmark(bname)
        for scen in scenarios:
            if scen not in bench.scenarios:
                raise SubmissionError(f"{bname} has no {scen} scenario in rules.yaml")
            tuning = tuning_all.get("benchmarks", {}).get(bname, {}).get(scen)
            if not tuning:
                raise SubmissionError(f"systems file has no tuning for {bname} {scen}")
            qps = qps_hint(scen, tuning, profile)
            n_acc = profile.accuracy_sample_count or bench.eval_set_size
            acc_qps = qps_hint("Offline", tuning, profile) if scen == "Offline" else qps
            plans.append(RunPlan(bname, scen, "AccuracyOnly", "accuracy",
                                 loadgen_settings(rules, bench, scen, "AccuracyOnly", profile,
                                                  tuning),
                                 STARTUP_S + n_acc / acc_qps))
            for split in bench.splits.values():  # e.g. the generalisation split (issue 12)
                n_split = profile.accuracy_sample_count or split.eval_set_size
                plans.append(RunPlan(bname, scen, "AccuracyOnly", f"accuracy/{split.name}",
                                     loadgen_settings(rules, bench, scen, "AccuracyOnly", profile,
                                                      tuning),
                                     STARTUP_S + n_split / acc_qps, split=split.name))
            dur = max(profile.min_duration_ms / 1000, profile.min_query_count[scen] / qps) * 1.1
            perf = loadgen_settings(rules, bench, scen, "PerformanceOnly", profile, tuning)
            plans.append(RunPlan(bname, scen, "PerformanceOnly", "performance/run_1", perf,
                                 STARTUP_S + dur))
            audit_s = max(profile.audit_min_duration_ms / 1000,
                          profile.audit_min_query_count[scen] / qps) * 1.1
            for name, extra in audit_settings(rules, profile, scen).items():
                plans.append(RunPlan(bname, scen, "PerformanceOnly", f"audit/{name}",
                                     {**perf, **extra}, STARTUP_S + audit_s))
    return plans


def user_conf(plan: RunPlan) -> str:
    names = {"min_duration_ms": "min_duration", "min_query_count": "min_query_count",
             "offline_expected_qps": "target_qps", "server_target_qps": "target_qps",
             "server_target_latency_ns": "target_latency",
             "single_stream_expected_latency_ns": "target_latency"}
    lines = ["# LoadGen user settings of this result (written by make submission)"]
    for key, name in names.items():
        if key in plan.settings:
            v = plan.settings[key]
            if key.endswith("_ns"):
                v = int(v / 1e6)  # user.conf latencies are in ms
            lines.append(f"{plan.benchmark}.{plan.scenario}.{name} = {v}")
    return "\n".join(lines) + "\n"


@dataclass
class ServerOffer:
    """The rate a benchmark's Server runs offer, and why (recorded in measurements.json).

    Official profile: the system file's server_target_qps (the student's tuning; too high a
    rate ends INVALID). An adaptive profile (rules.yaml `server_qps_of_offline`, the smoke
    profile) offers no more than that share of the Offline rate this submission has just
    measured on this machine, so a busy machine still serves it within the bound."""
    declared_qps: float          # the system file's server_target_qps
    profile_fraction: float      # the profile's server_qps_fraction
    of_offline: float | None     # the profile's server_qps_of_offline (None: not adaptive)
    offline_measured_qps: float | None
    offered_qps: float = 0.0
    basis: str = ""

    @classmethod
    def of(cls, profile, tuning: dict, offline_measured: float | None) -> "ServerOffer":
        o = cls(float(tuning["server_target_qps"]), profile.server_qps_fraction,
                profile.server_qps_of_offline, offline_measured)
        o.offered_qps = round(o.declared_qps * o.profile_fraction, 3)
        o.basis = (f"the system file's server_target_qps x {o.profile_fraction:g}"
                   if o.profile_fraction != 1 else "the system file's server_target_qps")
        if o.of_offline and offline_measured:
            measured = round(offline_measured * o.of_offline, 3)
            if measured < o.offered_qps:
                o.offered_qps = measured
                o.basis = (f"{o.of_offline:g} x the Offline rate measured in this submission "
                           f"({offline_measured:.2f}/s)")
        elif o.of_offline:
            o.basis += " (no Offline run in this submission to measure the machine by)"
        return o

    @property
    def adaptive(self) -> bool:
        return self.of_offline is not None

    def lower(self, qps: float, why: str) -> None:
        self.offered_qps, self.basis = qps, f"{self.basis}; lowered to {qps:g}/s: {why}"

    def apply(self, plan: RunPlan) -> None:
        """Offer this rate in a Server plan (and stretch its expected time to match)."""
        old = plan.settings.get("server_target_qps")
        plan.settings["server_target_qps"] = self.offered_qps
        if old and old != self.offered_qps:
            plan.expected_s = STARTUP_S + (plan.expected_s - STARTUP_S) * old / self.offered_qps

    def record(self) -> dict:
        return {"offered_qps": self.offered_qps, "basis": self.basis,
                "declared_qps": self.declared_qps, "profile_fraction": self.profile_fraction,
                "of_offline": self.of_offline, "offline_measured_qps": self.offline_measured_qps}


def measured_offline(bench_dir: Path) -> float | None:
    """The Offline performance rate this submission measured for a benchmark (None: none)."""
    d = read_detail(bench_dir / "Offline/performance/run_1/mlperf_log_detail.txt") \
        if (bench_dir / "Offline/performance/run_1/mlperf_log_detail.txt").is_file() else {}
    rate = d.get("result_samples_per_second")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def server_shortfall(detail: dict, bound_ns) -> tuple[str, float | None]:
    """Why a Server run's latency kept it from VALID, in words from its detail log, and the
    factor to scale its offered rate by (None: a lower rate would not help, or it met the
    bound). LoadGen's early stopping makes a run INVALID when more queries are over the bound
    than its query count allows (none at all under 459 queries for p99), so a p99 within the
    bound is not enough: the queries over it count too."""
    def num(key):
        v = detail.get(key)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    p99, worst = num("result_99.00_percentile_latency_ns"), num("result_max_latency_ns")
    over, count = num("result_overlatency_query_count"), num("result_query_count")
    if not bound_ns or p99 is None:
        return "p99 unknown", None
    if p99 > bound_ns:
        # queueing makes latency grow faster than linearly with the rate: a 20% margin errs low
        return p99_text(p99, bound_ns), min(0.9, 0.8 * bound_ns / p99)
    if over and worst and worst > bound_ns:
        queries = f" of {count:,.0f}" if count else ""
        return (f"{p99_text(p99, bound_ns).replace('against', 'within')}, but {over:,.0f}"
                f"{queries} queries over it (LoadGen's early stopping allows fewer at this "
                f"query count)", min(0.7, max(0.5, 0.8 * bound_ns / worst)))
    return p99_text(p99, bound_ns), None


def suggested_server_qps(offered: float, detail: dict, bound_ns) -> float | None:
    """A Server rate to try after a run that broke its latency bound: the offered rate scaled
    by server_shortfall's factor. None when the latency is unknown or met the bound."""
    factor = server_shortfall(detail, bound_ns)[1]
    return None if factor is None else max(round(offered * factor, 2), 0.01)


def p99_text(p99_ns, bound_ns) -> str:
    p99 = f"{p99_ns / 1e6:,.0f} ms" if isinstance(p99_ns, (int, float)) else "unknown"
    return f"p99 {p99} against the {bound_ns / 1e6:,.0f} ms bound"


def server_advice(bname: str, detail: dict, bound_ns, offer: ServerOffer | None,
                  system: str) -> str:
    """One line for a Server run that ended INVALID: what was offered, what its latency was
    against the bound (the p99, and the queries over the bound that early stopping counts),
    and a rate to try, taken from the measurement."""
    why = server_shortfall(detail, bound_ns)[0]
    validity = detail.get("result_validity") or "INVALID"
    offered = offer.offered_qps if offer else None
    line = (f"{bname} Server is {validity}: offered {offered:g}/s, {why}" if offered else
            f"{bname} Server is {validity}: {why}")
    lower = suggested_server_qps(offered, detail, bound_ns) if offered else None
    if lower is not None and offer is not None:
        declared = round(lower / offer.profile_fraction, 2)
        line += f"; try server_target_qps: {declared:g} in systems/{system}.yaml"
    else:
        line += f"; see its mlperf_log_summary.txt, then lower server_target_qps in " \
                f"systems/{system}.yaml"
    return line
