"""G309, G312, L105: the identity of a run and of its submitter, stated in many files, must be
one identity (rules.md section 9): the pinned LoadGen build; user.conf, the summary, the
measurements and the index agreeing with the detail log; the submitter and division agreeing
with the directory they sit in.
"""
from __future__ import annotations

import math
import re

from compliance.checks import err, warn
from compliance.context import Ctx

USER_CONF = re.compile(r"^\s*([A-Za-z0-9_.-]+)\.([A-Za-z]+)\.([a-z_]+)\s*=\s*(\S+)\s*$")
# user.conf key -> (detail-log key, unit factor from user.conf to the log)
CONF_KEYS = {"min_duration": ("requested_min_duration_ms", 1),
             "min_query_count": ("requested_min_query_count", 1),
             "target_latency": ("requested_server_target_latency_ns", 1e6)}
QPS_KEY = {"Offline": "requested_offline_expected_qps", "Server": "requested_server_target_qps"}
SUMMARY_METRIC = {"Offline": ("Samples per second", "result_samples_per_second"),
                  "Server": ("Scheduled samples per second", "result_scheduled_samples_per_sec")}


def loadgen_build_pinned(ctx: Ctx, rule: str):
    """every detail log comes from the pinned LoadGen build: its loadgen_version is
    rules.yaml loadgen.version exactly and its git log starts with that build's commit; the
    measurements and the machine probe name the same version."""
    want = ctx.rules.loadgen_version
    version, _, build = want.partition(" @ ")
    for r in ctx.results:
        for base, _ in r.runs:
            rel = f"{base}/mlperf_log_detail.txt"
            d, _ = ctx.tree.mllog(rel)
            if d is None:
                continue
            v, line = d.get("loadgen_version", (None, "?"))
            if v != want:
                yield err(rule, rel, "the log is not of the pinned LoadGen build",
                          location=f"line {line}", expected=want, found=v)
                continue
            g, line = d.get("loadgen_git_log_message", (None, "?"))
            if not isinstance(g, str) or not g.startswith(build):
                yield err(rule, rel, "the log's LoadGen commit is not the pinned build's",
                          location=f"line {line}", expected=f"{build}...",
                          found=str(g)[:40])
        m = ctx.measurements(r)
        if m is not None and m.get("loadgen_version") != want:
            yield err(rule, r.file("measurements.json"), "measurements name another LoadGen",
                      location="/loadgen_version", expected=want, found=m.get("loadgen_version"))
    for s in ctx.systems:
        doc, _ = ctx.tree.json(f"systems/{s}.json")
        probe = doc.get("probe") if isinstance(doc, dict) else None
        if isinstance(probe, dict) and "loadgen" in probe and probe["loadgen"] != version:
            yield err(rule, f"systems/{s}.json", "the machine probe found another LoadGen",
                      location="/probe/loadgen", expected=version, found=probe["loadgen"])


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _parse_summary(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def _close(a, b, rel=1e-6) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def _when(value) -> float | None:
    import datetime
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _run_identity(ctx: Ctx, rule: str):
    """Each run's start (test_datetime) and LoadGen process: runs of a result happen in the
    harness's order (accuracy, performance, TEST01, TEST04) within two days after the
    submission was created, each in its own process."""
    index, _ = ctx.tree.json("submission.json")
    systems = index.get("systems") if isinstance(index, dict) else None
    pids: dict = {}
    for r in ctx.results:
        entry = systems.get(r.system) if isinstance(systems, dict) else None
        created = _when(entry.get("created")) if isinstance(entry, dict) else None
        last = None
        for base, _ in r.runs:
            rel = f"{base}/mlperf_log_detail.txt"
            d, _ = ctx.tree.mllog(rel)
            if d is None:
                continue
            value, line = d.get("test_datetime", (None, "?"))
            t = _when(value)
            if t is None or (created is not None and not created - 60 <= t <= created + 2 * 86400):
                yield err(rule, rel, "the run's start is not within the submission's making",
                          location=f"line {line}", expected=f"after {entry.get('created')}"
                          if isinstance(entry, dict) else "a date", found=value)
            elif last is not None and t < last:
                yield err(rule, rel, "the run started before the run the harness makes before "
                          "it (a log from another run)", location=f"line {line}", found=value)
            last = t if t is not None else last
            pid = next((m.get("pid") for k in ("effective_scenario", "loadgen_version")
                        if (m := _metadata(ctx, rel, k))), None)
            if pid is not None:
                if pid in pids:
                    yield err(rule, rel, "two runs share one LoadGen process (a copied log)",
                              found=f"pid {pid}", hint=f"also {pids[pid]}")
                pids.setdefault(pid, rel)


def _metadata(ctx: Ctx, rel: str, key: str) -> dict | None:
    """The metadata of a key's record (re-read from the line the parser noted)."""
    d, _ = ctx.tree.mllog(rel)
    text, _ = ctx.tree.text(rel)
    if d is None or key not in d or text is None:
        return None
    lines = ctx.tree.memo(("lines", rel), text.splitlines)
    try:
        import json
        meta = json.loads(lines[d[key][1] - 1][len(":::MLLOG "):]).get("metadata")
    except (ValueError, IndexError):
        return None
    return meta if isinstance(meta, dict) else None


def _unreadable(ctx: Ctx, rule: str, rel: str, text, why: str):
    """An empty, non-UTF-8 or unreadable file that must state settings: a finding, never a
    silent skip (a missing file is L101's)."""
    if text is None and ctx.tree.kind(rel) != "missing":
        yield err(rule, rel, f"unreadable: {why}", expected="UTF-8 text")
    elif text is not None and not text.strip():
        yield err(rule, rel, "the file is empty", expected="the run's settings or summary")


def settings_agree(ctx: Ctx, rule: str):
    """every file that states a result's settings or identity agrees with its detail
    log: user.conf (benchmark, scenario, min duration and query count, target rate and latency,
    and the profile's min duration); mlperf_log_summary.txt (scenario, mode, validity, the
    result); measurements.json (profile as indexed in submission.json, commit, dirty flag and
    rules hash as in submission.json and the other results, latencies and flags as logged);
    each run's start and process (runs in the harness's order, within two days of the
    submission's creation, never two in one LoadGen process)."""
    yield from _run_identity(ctx, rule)
    index, _ = ctx.tree.json("submission.json")
    systems = index.get("systems") if isinstance(index, dict) else None
    seen: dict[str, tuple] = {}
    for r in ctx.results:
        d, _ = ctx.tree.mllog(f"{r.perf}/mlperf_log_detail.txt")
        if d is None:
            continue
        prof = ctx.rules.profile(ctx.profile_of(r))
        # user.conf
        rel = r.file("user.conf")
        text, why = ctx.tree.text(rel)
        yield from _unreadable(ctx, rule, rel, text, why)
        if text is not None:
            for i, line in enumerate(text.splitlines(), 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                mt = USER_CONF.match(line)
                if not mt:
                    yield err(rule, rel, "a user.conf line is not `benchmark.Scenario.key = value`",
                              location=f"line {i}", found=line[:80])
                    break
                bench, scen, key, raw = mt.groups()
                try:
                    value = float(raw)
                except ValueError:
                    value = None
                log_key, factor = CONF_KEYS.get(key, (None, 1))
                if key == "target_qps":
                    log_key = QPS_KEY.get(r.scenario)
                elif key == "target_latency" and r.scenario == "SingleStream":
                    log_key = "requested_single_stream_expected_latency_ns"
                logged = _num(d.get(log_key, (None,))[0]) if log_key else None
                problem = None
                if (bench, scen) != (r.benchmark, r.scenario):
                    problem = f"names {bench}.{scen}"
                elif log_key is None:
                    problem = f"unknown setting {key}"
                elif value is None or logged is None or not _close(value * factor, logged):
                    problem = f"{key} = {raw}, the log says {logged}"
                elif key == "min_duration" and value < prof.min_duration_ms:
                    problem = f"min_duration {raw} is below the {prof.name} profile's"
                if problem:
                    yield err(rule, rel, "user.conf disagrees with the run", location=f"line {i}",
                              found=problem)
                    break
        # the summary
        rel = f"{r.perf}/mlperf_log_summary.txt"
        text, why = ctx.tree.text(rel)
        yield from _unreadable(ctx, rule, rel, text, why)
        if text is not None:
            sm = _parse_summary(text)
            pairs = [("Scenario", d.get("effective_scenario", (None,))[0]),
                     ("Mode", d.get("effective_test_mode", (None,))[0]),
                     ("Result is", d.get("result_validity", (None,))[0])]
            for label, logged in pairs:
                if sm.get(label) != logged:
                    yield err(rule, rel, f"the summary's {label!r} disagrees with the detail log",
                              expected=logged, found=sm.get(label))
            if r.scenario in SUMMARY_METRIC:
                label, key = SUMMARY_METRIC[r.scenario]
                try:
                    stated = float(sm.get(label, "x"))
                except ValueError:
                    stated = None
                logged = _num(d.get(key, (None,))[0])
                if stated is None or logged is None or \
                        not math.isclose(stated, logged, rel_tol=0.01, abs_tol=0.01):
                    yield err(rule, rel, f"the summary's {label!r} disagrees with the detail log",
                              expected=logged, found=sm.get(label))
        # measurements.json
        m = ctx.measurements(r)
        if m is None:
            continue
        rel = r.file("measurements.json")
        entry = systems.get(r.system) if isinstance(systems, dict) else None
        if isinstance(entry, dict):
            for key in ("profile", "commit", "dirty", "eligible"):
                if key in entry and m.get(key) != entry[key]:
                    yield err(rule, rel, f"the {key} differs from submission.json's",
                              location=f"/{key}", expected=entry[key], found=m.get(key))
        # a run for some benchmarks keeps the others (issue 29), so results of one system
        # may differ in date, never in the code, rules or names they were run with
        ident = tuple(str(m.get(k)) for k in ("commit", "dirty", "rules_sha256", "submitter",
                                              "division"))
        if r.system in seen and seen[r.system][1] != ident:
            yield err(rule, rel, "the results of one system disagree on commit, dirty flag, "
                      "rules hash, submitter or division", found=ident[:3],
                      expected=seen[r.system][1][:3], hint=f"compare with {seen[r.system][0]}")
        seen.setdefault(r.system, (rel, ident))
        if m.get("eligible") is True and m.get("dirty") is not False:
            yield warn(rule, rel, "an eligible result from a tree with uncommitted changes",
                       location="/dirty", expected=False, found=m.get("dirty"))
        perf = m.get("performance") if isinstance(m.get("performance"), dict) else {}
        for field, key, scale in (("mean_latency_ms", "result_mean_latency_ns", 1e-6),
                                  ("p99_latency_ms", "result_99.00_percentile_latency_ns", 1e-6),
                                  ("min_duration_met", "result_min_duration_met", None),
                                  ("min_queries_met", "result_min_queries_met", None),
                                  ("perf_constraints_met", "result_perf_constraints_met", None)):
            if field not in perf:
                continue
            logged = d.get(key, (None,))[0]
            stated = perf[field]
            ok = (stated == logged and type(stated) is type(logged)) if scale is None else \
                _close(_num(stated), (_num(logged) or 0) * scale if logged is not None else 0.0)
            if not ok:
                yield err(rule, rel, f"performance.{field} differs from the detail log",
                          location=f"/performance/{field}", expected=logged, found=stated)


# letters that look like Latin ones (Unicode confusables, Cyrillic and Greek): a name is
# compared by its skeleton, so `аlice` (Cyrillic а) is `alice`
_CONFUSABLE = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ı": "i", "ℓ": "l",
    "0": "o", "1": "l", "|": "l"})
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def normalise_name(name) -> str:
    """A submitter's name as one person: NFKC, casefold, confusable skeleton, separators
    dropped (`Alice`, `alice`, `аlice` and `a-lice` are one name)."""
    import unicodedata
    s = unicodedata.normalize("NFKC", str(name)).casefold()
    s = unicodedata.normalize("NFKC", s.translate(_CONFUSABLE))
    return "".join(c for c in s if c.isalnum())


def entry_name(name: str) -> str:
    """The submitter an entry (directory or archive) is named after."""
    for suf in ARCHIVE_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def submitter_identity(ctx: Ctx, rule: str):
    """the submission is its directory's or archive's: in the layout
    results/<division>/<submitter>/ every measurements.json names that division and submitter;
    an archive <submitter>.tar.gz (.tgz, .tar, .zip) names its submitter likewise; all of
    them name one. Names are compared as one person's: NFKC, casefold and a confusable
    skeleton (Cyrillic or Greek look-alikes)."""
    root = ctx.tree.root
    names = {(normalise_name(m.get("submitter")), m.get("division")) for r in ctx.results
             if (m := ctx.measurements(r)) is not None}
    if len(names) > 1:
        yield err(rule, "results", "the results name more than one submitter or division",
                  found=sorted(map(str, names))[:3])
    archive = getattr(ctx, "entry_name", None)
    if (archive or root.parent.name in ("closed", "open")) and names:
        want = (normalise_name(entry_name(archive) if archive else root.name),
                None if archive else root.parent.name)
        for r in ctx.results:
            m = ctx.measurements(r)
            if m is None:
                continue
            got = (normalise_name(m.get("submitter")), m.get("division"))
            if got[0] != want[0] or (want[1] is not None and got[1] != want[1]):
                yield err(rule, r.file("measurements.json"), "the submitter or division is not "
                          "the directory's", expected=f"{want[0]} ({want[1]})",
                          found=f"{m.get('submitter')} ({m.get('division')})")
                break
