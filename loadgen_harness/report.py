"""A performance report with pictures: PNG plots and one HTML page from a submission.

    python -m loadgen_harness.report results/closed/reference --out build/report   # make report
    python -m loadgen_harness.report --sweep build/sweep.json --benchmarks nano-react
    python -m loadgen_harness.report results/closed/reference --out build/report \
        --sweep-json build/sweep.json

From the submission's performance runs (LoadGen detail logs and agent traces) it draws:
per-step latency and context length by step index, KV-cache bytes across steps, tool against
generation time per episode, throughput against batch size and Server p99 latency against the
offered rate. A submission holds one Offline run per benchmark (at its declared batch) and one
Server run (at its target rate), so those two plots show one point each; the curves come from
a sweep (`--sweep`: real LoadGen runs of the reference SUT, reusing loadgen_harness.bench, at a
few batch sizes and rates on the first tasks of the frozen set), read back with --sweep-json.
The page says which plot is absent or a single point, and why; no figure is ever made up.

The submission is untrusted input: it is read through loadgen_harness.untrusted.tree
(size-bounded reads, links refused, never followed), only names made of [A-Za-z0-9._-] are
used, at most MAX_EPISODES records per trace, and every text on the page is escaped. The report
is built in a hidden directory beside --out and moved into place whole, so a failure leaves no
page that looks complete; an existing --out is replaced only when it holds an earlier report.

The plots themselves are drawn by loadgen_harness/report_plots.py.

Limits: plots the performance runs only (not accuracy or audit runs); the sweep runs on this
machine with the repository's reference checkpoint, not on the submission's machine.
"""
from __future__ import annotations

import argparse
import datetime
import html
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from loadgen_harness.untrusted.safe import text as printable
from loadgen_harness.untrusted.tree import Tree, strict_loads
from loadgen_harness.atomic import swap_path
from loadgen_harness.spec import Tuning
from loadgen_harness.report_plots import (plot_kv, plot_latency_qps, plot_steps,
                                          plot_throughput, plot_tool_vs_generation)
from reference.rules import SCENARIOS

SCHEMA_VERSION = 1
SWEEP_KIND = "nano-agent-perf/sweep"
MARKER = "report.json"          # an --out directory holding this is ours to replace
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_EPISODES = 20_000           # per trace: the official runs hold 1,000
MAX_STEPS = 64                  # per episode: rules.yaml bounds episodes far below this
MAX_SWEEP_BYTES = 2**20


class ReportError(Exception):
    """A user mistake or an unusable input: printed as one line, exit status 2."""


def _num(v) -> float | None:
    """A finite, non-negative number, or None (booleans are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


@dataclass
class Run:
    """The performance run of one results/<system>/<benchmark>/<scenario>."""
    system: str
    benchmark: str
    scenario: str
    detail: dict                   # LoadGen detail log: key -> first value
    max_batch: int | None          # declared in systems/<system>.json tuning
    episodes: list = field(default_factory=list)  # [[(gen_ms, tool_ms, context, kv_bytes)]]
    skipped: int = 0               # trace records refused as malformed

    @property
    def name(self) -> str:
        return f"{self.system} / {self.benchmark} / {self.scenario}"

    def key(self, k: str) -> float | None:
        return _num(self.detail.get(k))


def _steps(rec) -> list | None:
    steps = rec.get("steps") if isinstance(rec, dict) else None
    if not isinstance(steps, list) or not 0 < len(steps) <= MAX_STEPS:
        return None
    out = []
    for s in steps:
        if not isinstance(s, dict):
            return None
        row = tuple(_num(s.get(k)) for k in ("generation_ms", "tool_ms", "context_tokens",
                                              "kv_cache_bytes"))
        if any(x is None for x in row):
            return None
        out.append(row)
    return out


def read_submission(root: Path) -> tuple[list[Run], list[str]]:
    """Every performance run of the submission at `root`, and notes on what was skipped."""
    root = Path(root)
    if not root.exists():
        raise ReportError(f"{printable(root)}: no such directory")
    if root.is_symlink() or not root.is_dir():
        raise ReportError(f"{printable(root)}: not a directory (give a submission directory, "
                          "e.g. results/closed/reference)")
    tree = Tree(root)
    if tree.kind("submission.json") != "file" or tree.json("submission.json")[0] is None:
        raise ReportError(f"{printable(root)}: not a submission (no readable submission.json; "
                          "expected results/<division>/<submitter>)")
    runs, notes = [], []
    for system in tree.listdir("results"):
        if not NAME.match(system) or tree.kind(f"results/{system}") != "dir":
            notes.append(f"skipped results/{printable(system, 60)}: not a plain directory name")
            continue
        sysdoc, _ = tree.json(f"systems/{system}.json")
        tuning = sysdoc.get("tuning") if isinstance(sysdoc, dict) else None
        per_bench = tuning.get("benchmarks") if isinstance(tuning, dict) else None
        for bench in tree.listdir(f"results/{system}"):
            if not NAME.match(bench):
                notes.append(f"skipped results/{system}/{printable(bench, 60)}: odd name")
                continue
            for scenario in tree.listdir(f"results/{system}/{bench}"):
                if scenario not in SCENARIOS:
                    continue
                run = _read_run(tree, system, bench, scenario, per_bench, notes)
                if run is not None:
                    runs.append(run)
    if not runs:
        raise ReportError(f"{printable(root)}: no readable performance run (expected "
                          "results/<system>/<benchmark>/<scenario>/performance/run_1/"
                          "mlperf_log_detail.txt)")
    return runs, notes


def _plain_dirs(tree: Tree, rel: str) -> bool:
    """Whether every directory on the way to `rel` is a directory, not a link (the OS would
    follow a link in the middle of a path; Tree.kind looks at the last part only)."""
    parts = rel.split("/")
    return all(tree.kind("/".join(parts[:i])) == "dir" for i in range(1, len(parts) + 1))


def _read_run(tree: Tree, system, bench, scenario, per_bench, notes) -> Run | None:
    base = f"results/{system}/{bench}/{scenario}/performance/run_1"
    if not _plain_dirs(tree, base):
        notes.append(f"skipped {base}: missing, or a link on the way (links are not followed)")
        return None
    d, problem = tree.mllog(f"{base}/mlperf_log_detail.txt")
    detail = {k: v[0] for k, v in (d or {}).items() if not k.startswith("__")}
    if not detail:
        notes.append(f"skipped {base}: mlperf_log_detail.txt "
                     f"{problem or 'holds no LoadGen record'}")
        return None
    tune = per_bench.get(bench, {}).get(scenario) if isinstance(per_bench, dict) and \
        isinstance(per_bench.get(bench), dict) else None
    mb = tune.get("max_batch") if isinstance(tune, dict) else None
    run = Run(system, bench, scenario, detail,
              mb if isinstance(mb, int) and not isinstance(mb, bool) and mb > 0 else None)
    rows, problem = tree.json_lines(f"{base}/agent_trace.jsonl")
    if rows is None:
        notes.append(f"{base}/agent_trace.jsonl: {problem}; no per-step plots for this run")
        return run
    for _, rec, _ in rows[:MAX_EPISODES]:
        steps = _steps(rec)
        if steps is None:
            run.skipped += 1
        else:
            run.episodes.append(steps)
    if len(rows) > MAX_EPISODES:
        notes.append(f"{base}/agent_trace.jsonl: only the first {MAX_EPISODES} records read")
    if run.skipped:
        notes.append(f"{base}/agent_trace.jsonl: {run.skipped} malformed records skipped")
    return run


def read_sweep(path: Path) -> dict:
    """A sweep file written by --sweep, checked: {benchmark: {"offline": [...], "server": [...]}}
    with finite positive figures, and its provenance."""
    path = Path(path)
    try:
        if path.is_symlink() or not path.is_file():
            raise ReportError(f"--sweep-json {printable(path)}: not a regular file")
        if path.stat().st_size > MAX_SWEEP_BYTES:
            raise ReportError(f"--sweep-json {printable(path)}: over {MAX_SWEEP_BYTES} bytes")
        doc = strict_loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ReportError(f"--sweep-json {printable(path)}: unreadable: {printable(err, 120)}")
    if not isinstance(doc, dict) or doc.get("kind") != SWEEP_KIND or \
            doc.get("schema_version") != SCHEMA_VERSION or \
            not isinstance(doc.get("benchmarks"), dict):
        raise ReportError(f"--sweep-json {printable(path)}: not a sweep file of this suite "
                          f"(kind {SWEEP_KIND}, schema_version {SCHEMA_VERSION})")
    need = {"offline": ("max_batch", "samples_per_second"),
            "server": ("target_qps", "scheduled_qps", "p99_ms", "mean_ms")}
    for bench, part in doc["benchmarks"].items():
        if not NAME.match(bench) or not isinstance(part, dict):
            raise ReportError(f"--sweep-json: bad benchmark entry {printable(bench, 60)}")
        for kind, keys in need.items():
            pts = part.get(kind, [])
            if not isinstance(pts, list) or any(
                    not isinstance(p, dict) or any(not _num(p.get(k)) for k in keys) for p in pts):
                raise ReportError(f"--sweep-json: {bench} {kind}: every point needs positive "
                                  f"finite {', '.join(keys)}")
    return doc


# ------------------------------------------------------------------------------ the page

PLOTS = (  # file, title, caption (units), drawing function, needs the sweep
    ("step_latency_context.png", "Per-step latency and context length",
     "For each benchmark, left: the wall time of each agent step (generation plus tool, in "
     "ms) by step index; right: the context length in tokens when the step starts. Lines are "
     "medians over the performance run's episodes, bands the 10th to 90th percentile; in "
     "Offline many episodes share each decode batch, so a step's time includes waiting for "
     "its batch.", plot_steps, False),
    ("kv_cache_growth.png", "KV-cache bytes across steps",
     "The bytes of K and V held for an episode when each step starts (MiB), from the trace's "
     "kv_cache_bytes: one thin line per episode (a sample of at most 200), the median in "
     "black. It grows linearly with the context.", plot_kv, False),
    ("tool_vs_generation.png", "Tool against generation time per episode",
     "One dot per episode of each performance run: total generation time (x, ms) against "
     "total tool time (y, ms: nano-react's tools, nano-codegen's sandboxed verifier), log "
     "axes; a tool time of 0 is drawn at 0.001 ms. The legend gives the tools' share of all "
     "step time.", plot_tool_vs_generation, False),
    ("throughput_batch.png", "Throughput against batch size",
     "Offline episodes per second against the engine's max batch (rows decoded together), log "
     "x axis. Stars: the submission's Offline performance run at its declared max_batch "
     "(LoadGen's samples per second); the line: a sweep of LoadGen Offline runs.",
     plot_throughput, True),
    ("server_latency_qps.png", "Server latency against offered rate",
     "The latency-throughput curve: Server p99 (and mean) episode latency in ms against the "
     "rate LoadGen offered (scheduled queries per second). Stars: the submission's Server "
     "performance run; the dashed red line: its latency bound; the lines: a sweep of LoadGen "
     "Server runs with an unbounded latency.", plot_latency_qps, True),
)


def run_summary(r: Run) -> dict:
    """One run's headline figures, as LoadGen logged them (None where absent)."""
    rate = r.key("result_samples_per_second") if r.scenario != "Server" else \
        r.key("result_scheduled_samples_per_sec")
    p99 = r.key("result_99.00_percentile_latency_ns")
    validity = r.detail.get("result_validity")
    return {"system": r.system, "benchmark": r.benchmark, "scenario": r.scenario,
            "validity": validity if isinstance(validity, str) else None,
            "samples_per_second": rate, "p99_ms": round(p99 / 1e6, 3) if p99 else None,
            "max_batch": r.max_batch, "episodes_read": len(r.episodes),
            "records_skipped": r.skipped}


def _cells(row: dict) -> list[str]:
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    return [row["system"], row["benchmark"], row["scenario"], row["validity"] or "?",
            f(row["samples_per_second"], ",.2f"), f(row["p99_ms"], ",.1f"),
            f(row["max_batch"], "d"), f(row["episodes_read"], "d")]


def to_html(title: str, source: str, runs, drawn: dict, notes: list[str], sweep) -> str:
    e = lambda v: html.escape(printable(v), quote=True)  # noqa: E731
    head = ("system", "benchmark", "scenario", "validity", "episodes/s (Server: scheduled)",
            "p99 latency (ms)", "declared max_batch", "trace episodes read")
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{e(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:75rem}"
             "table{border-collapse:collapse;margin-bottom:1.5rem}th,td{border:1px solid #ccc;"
             "padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}"
             "figure{margin:0 0 2rem 0}figure img{max-width:100%;border:1px solid #ddd}"
             "figcaption{color:#333;max-width:60rem}.absent{color:#a00}</style></head><body>",
             f"<h1>{e(title)}</h1>", f"<p>Submission: <code>{e(source)}</code>. Figures are "
             "LoadGen's own (detail logs of the performance runs) and the agent traces'.</p>",
             "<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
             + "</tr></thead><tbody>"]
    parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(run_summary(r))) + "</tr>"
              for r in runs]
    parts.append("</tbody></table>")
    if sweep:
        dirty = " (uncommitted changes)" if sweep.get("dirty") else ""
        parts.append(f"<p>Sweep (the curves): run {e(sweep.get('created', '?'))} on system "
                     f"{e(sweep.get('system', '?'))} at commit {e(sweep.get('commit', '?'))}"
                     f"{dirty}, {e(sweep.get('tasks', '?'))} episodes per Offline run, "
                     f"{e(sweep.get('server_seconds', '?'))} s per Server run. It ran at another "
                     "time than the submission, possibly on another machine or under another "
                     "load: compare the curves' shape with each other, and the submission's "
                     "star with its own bound.</p>")
    for fname, ptitle, caption, _, needs_sweep in PLOTS:
        parts.append(f"<h2>{e(ptitle)}</h2>")
        why = drawn[fname]
        if why:
            parts.append(f"<p class=\"absent\">Not drawn: {e(why)}.</p>")
            continue
        extra = ""
        if needs_sweep and not sweep:
            extra = (" No sweep was given, so each benchmark shows the submission's single "
                     "point: a submission holds one run per scenario. For a curve, run "
                     "<code>python -m loadgen_harness.report --sweep sweep.json</code> and pass "
                     "<code>--sweep-json sweep.json</code>.")
        parts.append(f"<figure><img src=\"{e(fname)}\" alt=\"{e(ptitle)}\">"
                     f"<figcaption>{e(caption)}{extra}</figcaption></figure>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished report into place, replacing only an earlier report."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ReportError(f"--out {printable(out)}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ReportError(f"--out {printable(out)}: a non-empty directory that is not a "
                          "report; refusing to replace it")
    swap_path(tmp, out)


def build_report(results: Path, out: Path, sweep_path: Path | None = None) -> dict:
    runs, notes = read_submission(results)
    sweep = read_sweep(sweep_path) if sweep_path else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide a published page
    try:
        drawn = {}
        for fname, _, _, fn, needs_sweep in PLOTS:
            drawn[fname] = fn(runs, sweep, tmp / fname) if needs_sweep else fn(runs, tmp / fname)
        title = f"Performance report: {Path(results).resolve().name}"
        summary = {"schema_version": SCHEMA_VERSION, "source": str(results),
                   "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"),
                   "sweep": str(sweep_path) if sweep_path else None,
                   "plots": {f: (why or "drawn") for f, why in drawn.items()},
                   "runs": [run_summary(r) for r in runs], "notes": notes}
        (tmp / MARKER).write_text(json.dumps(summary, indent=1) + "\n")
        (tmp / "index.html").write_text(to_html(title, str(results), runs, drawn, notes, sweep))
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary


# ----------------------------------------------------------------------------- the sweep

def run_sweep(path: Path, benchmarks: list[str], system: str, batches: list[int],
              qps_factors: list[float], tasks: int, server_seconds: float) -> dict:
    """Real LoadGen runs of the reference SUT (loadgen_harness.bench's, each in its child
    process): Offline at each max batch over the first `tasks` episodes, Server at each
    factor of the system's target rate with an unbounded latency."""
    from loadgen_harness.bench import loadgen_rate, server_p99_ms
    from reference.rules import RulesError, load_rules
    from loadgen_harness.runner import RunError
    from loadgen_harness.submission.write import git_state
    from loadgen_harness.system import DeclarationError, load_system
    rules = load_rules()
    try:
        tuning = load_system(system)["tuning"]
        for name in benchmarks:
            rules.benchmark(name)
            if name not in tuning["benchmarks"]:
                raise RulesError(f"systems/{system}.yaml has no tuning for {name}")
    except (DeclarationError, RulesError) as err:
        raise ReportError(f"--sweep: {err}") from None
    try:
        return _sweep(path, rules, tuning, benchmarks, system, batches, qps_factors, tasks,
                      server_seconds, loadgen_rate, server_p99_ms, git_state)
    except RunError as err:  # a LoadGen run that failed: say which, no traceback
        raise ReportError(f"--sweep: a LoadGen run failed: {err}") from None


def _sweep(path, rules, tuning, benchmarks, system, batches, qps_factors, tasks,
           server_seconds, loadgen_rate, server_p99_ms, git_state) -> dict:
    doc = {"schema_version": SCHEMA_VERSION, "kind": SWEEP_KIND,
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           **git_state(), "system": system, "tasks": tasks, "server_seconds": server_seconds,
           "tuning": {k: tuning.get(k) for k in ("device", "workers", "threads", "draft")},
           "benchmarks": {}}
    for name in benchmarks:
        bench = rules.benchmark(name)
        t = tuning["benchmarks"][name]
        ckpt = bench.reference_checkpoint
        part = doc["benchmarks"][name] = {"offline": [], "server": []}
        for b in batches:
            eps = loadgen_rate(rules, bench, ckpt, tasks, t["Offline"].get(
                "offline_expected_qps", 10), tuning, b)
            part["offline"].append({"max_batch": b, "samples_per_second": round(eps, 3)})
            print(f"{name} Offline max_batch {b:4d}: {eps:8.2f} episodes/s", flush=True)
        srv_batch = Tuning.of(tuning, name, "Server").max_batch
        for f in qps_factors:
            qps = round(f * t["Server"]["server_target_qps"], 3)
            row = server_p99_ms(rules, bench, ckpt, qps, server_seconds, tuning, srv_batch)
            part["server"].append({"target_qps": qps, "max_batch": srv_batch,
                                   "scheduled_qps": row["scheduled_qps"],
                                   "p99_ms": row["p99_ms"], "mean_ms": row["mean_ms"]})
            print(f"{name} Server {qps:7.2f} QPS: p99 {row['p99_ms']:9.1f} ms", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return doc


def _list(kind, text: str) -> list:
    try:
        vals = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers")
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadgen_harness.report",
                                 description="PNG plots and one HTML page from a submission's "
                                             "performance runs (or, with --sweep, run a sweep).")
    ap.add_argument("results", nargs="?", type=Path, metavar="RESULTS_DIR",
                    help="a submission directory (results/<division>/<submitter>)")
    ap.add_argument("--out", type=Path, default=Path("build/report"),
                    help="output directory (replaced whole; default build/report)")
    ap.add_argument("--sweep-json", type=Path, default=None, metavar="PATH",
                    help="a sweep written by --sweep: the throughput and latency curves")
    ap.add_argument("--sweep", type=Path, default=None, metavar="PATH",
                    help="run the sweep (real LoadGen runs, minutes) and write it to PATH")
    ap.add_argument("--benchmarks", default="nano-react,nano-codegen",
                    help="sweep: comma-separated benchmarks")
    ap.add_argument("--system", default="cpu", help="sweep: systems/<name>.yaml for the tuning")
    ap.add_argument("--batches", type=lambda s: _list(int, s), default=[4, 16, 64],
                    help="sweep: Offline max batch sizes (default 4,16,64)")
    ap.add_argument("--qps-factors", type=lambda s: _list(float, s),
                    default=[0.5, 0.75, 1.0, 1.25],
                    help="sweep: Server rates as factors of the system's server_target_qps")
    ap.add_argument("--tasks", type=lambda s: _list(int, s)[0], default=256,
                    help="sweep: episodes per Offline run")
    ap.add_argument("--server-seconds", type=float, default=20.0,
                    help="sweep: length of each Server run (s)")
    args = ap.parse_args(argv)
    try:
        if args.sweep:
            if args.results is not None:
                ap.error("--sweep runs a sweep; give no RESULTS_DIR with it")
            run_sweep(args.sweep, [b for b in args.benchmarks.split(",") if b], args.system,
                      args.batches, args.qps_factors, args.tasks, args.server_seconds)
            print(f"wrote {args.sweep}")
            return 0
        if args.results is None:
            ap.error("give a RESULTS_DIR (a submission directory) or --sweep PATH")
        summary = build_report(args.results, args.out, args.sweep_json)
    except ReportError as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 2
    absent = [f for f, s in summary["plots"].items() if s != "drawn"]
    print(f"wrote {args.out}/index.html and {len(PLOTS) - len(absent)} plots"
          + (f" ({len(absent)} not drawn: see the page)" if absent else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
