"""A course leaderboard: validate every submission in a folder, rank the valid ones.

    python -m compliance leaderboard submissions/ --out board/

Writes board/leaderboard.{md,csv,json} and board/index.html (one self-contained page, no
scripts, every submission-supplied string escaped; a bar chart per board drawn by matplotlib
as inline SVG, its text drawn as paths). Ranks are per benchmark, scenario and division by
the scenario's metric (Offline and Server: higher is better; SingleStream p90 latency: lower
is better). Each row carries its Server p99 latency (LoadGen's, from the performance run's
detail log) and its speed-up over the reference: the entry named `reference` on the same
board when there is one, else the reference submission's figure in rules.yaml
(checker.reference_results). Invalid submissions are listed with their reasons.
"""
from __future__ import annotations

import csv
import html
import io
import json
import re
import tempfile
from pathlib import Path

from compliance.archive import extract, is_archive
from compliance.check import check_path, find_root
from compliance.safe import csv_cell, json_value, markdown, text
from compliance.tree import Tree
from reference.rules import load_rules

NEAR_IDENTICAL = 0.1   # share of a run's episodes (sample and every timing) seen in another entry
REFERENCE_ENTRY = "reference"  # the official reference submission's submitter name
CHART_ROWS = 30        # bars drawn per board chart (the table lists every entry)


def _entries(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or p.name.startswith("."):
            continue
        if p.is_dir() or (p.is_file() and is_archive(p)):
            out.append(p)
    return out


def _name(p: Path) -> str:
    n = p.name
    for suf in (".tar.gz", ".tgz", ".tar", ".zip"):
        if n.endswith(suf):
            return n[: -len(suf)]
    return n


def _p99s_in(root: Path) -> dict[str, float]:
    """{"system/benchmark": Server p99 in ms} from each Server performance run's detail log
    (LoadGen's figure; rule G311 ties it to the per-query latencies)."""
    tree, out = Tree(root), {}
    for system in tree.listdir("results"):
        for bench in tree.listdir(f"results/{system}"):
            d, _ = tree.mllog(f"results/{system}/{bench}/Server/performance/run_1/"
                              "mlperf_log_detail.txt")
            v = (d or {}).get("result_99.00_percentile_latency_ns", (None,))[0]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
                out[f"{system}/{bench}"] = v / 1e6
    return out


def _server_p99s(path: Path) -> dict[str, float]:
    """Server p99s of an entry, a directory or an archive (opened again, as safely as the
    check opens it); {} when there is none to read."""
    if is_archive(path) and path.is_file():
        with tempfile.TemporaryDirectory(prefix="nano-board-") as tmp:
            extract(path, Path(tmp))
            root = find_root(Path(tmp))
            return _p99s_in(root) if root else {}
    root = find_root(path) if path.is_dir() and not path.is_symlink() else None
    return _p99s_in(root) if root else {}


def _check_one(path: str, profile: str, budget_s: float, replay: int = 0,
               replay_seed: int | None = None) -> dict:
    """Check one entry in a worker process: the report as plain data (never raises)."""
    try:
        report = check_path(Path(path), profile, sandbox_budget_s=budget_s, replay=replay,
                            replay_seed=replay_seed)
        p99s = _server_p99s(Path(path)) if report.valid else {}
        return {"valid": report.valid, "meta": report.meta, "p99s": p99s,
                "findings": [f.to_dict() for f in report.findings]}
    except Exception as exc:  # a checker bug must not stop the whole folder
        return {"valid": False, "meta": {}, "findings": [{
            "rule": "X901", "severity": "error", "file": "", "location": "", "expected": "",
            "found": "", "hint": "a bug in the checker; please report it",
            "message": f"the check crashed: {type(exc).__name__}: {exc}"}]}


def _check_all(entries: list[Path], profile: str, workers: int, replay: int = 0,
               replay_seed: int | None = None) -> list[dict]:
    """Check every entry, `workers` at a time (both cores), within the leaderboard's total
    sandbox budget (rules.yaml checker.max_sandbox_s_leaderboard): each check gets what is
    left, so a folder of hostile submissions costs a bounded time."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    rules = load_rules()
    left = float(rules.checker["max_sandbox_s_leaderboard"])
    out: list[dict | None] = [None] * len(entries)
    if workers <= 1 or len(entries) <= 1:
        for i, p in enumerate(entries):
            out[i] = _check_one(str(p), profile, max(left, 0.0), replay, replay_seed)
            left -= out[i]["meta"].get("sandbox_s", 0.0)
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = {}
        queue = list(enumerate(entries))
        while queue or pending:
            while queue and len(pending) < workers:
                i, p = queue.pop(0)
                pending[pool.submit(_check_one, str(p), profile, max(left, 0.0) / workers,
                                    replay, replay_seed)] = i
            done = next(iter(_wait(pending)))
            i = pending.pop(done)
            try:
                out[i] = done.result()
            except BrokenProcessPool:  # a worker died: the unfinished entries get X901
                died = {"valid": False, "meta": {}, "findings": [{
                    "rule": "X901", "severity": "error", "file": "", "location": "",
                    "expected": "", "found": "", "hint": "a bug in the checker",
                    "message": "the checker's worker process died during this check"}]}
                return [o if o is not None else died for o in out]
            left -= out[i]["meta"].get("sandbox_s", 0.0)
    return out


def _wait(pending):
    from concurrent.futures import FIRST_COMPLETED, wait
    return wait(pending, return_when=FIRST_COMPLETED).done


def _plausible(rules, row: dict) -> bool:
    """Whether a result is within the plausibility ratio of the reference on comparable
    hardware (the reference CPU machine scaled by the probe's core count)."""
    c = rules.checker
    ref = c["reference_results"].get(row["benchmark"], {})
    value, base = row.get("value"), ref.get(row["scenario"])
    if not isinstance(value, (int, float)) or not base or _lower(rules, row["benchmark"],
                                                                  row["scenario"]):
        return True
    cores = row.get("probe_cores") if isinstance(row.get("probe_cores"), int) else 1
    scale = max(1.0, cores / ref.get("cores", 1))
    ratio = c["plausibility_max_ratio_accelerator"] if row.get("probe_accelerators") \
        else c["plausibility_max_ratio"]
    return value <= ratio * base * scale


def collect(folder: Path, profile: str, workers: int = 2, replay: int | None = None,
            replay_seed: int | None = None) -> dict:
    rules = load_rules()
    if replay is None:
        replay = int(rules.checker.get("leaderboard_replay", 0))
    if replay_seed is None:  # one seed per course run, the checker's own randomness
        import secrets
        replay_seed = secrets.randbits(63)
    entries = _entries(folder)
    results = _check_all(entries, profile, workers, replay, replay_seed)
    names = [_name(p) for p in entries]
    boards: dict[str, list[dict]] = {}
    invalid, flagged = [], []
    evidence_owner: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    print_owner: dict[str, str] = {}
    for p, name, res in zip(entries, names, results):
        if not res["valid"]:  # only ranked entries can be copies of each other
            continue
        for h in res["meta"].get("evidence", {}).values():
            if h in evidence_owner and evidence_owner[h] != name:
                duplicates.setdefault(name, evidence_owner[h])
                duplicates.setdefault(evidence_owner[h], name)
            evidence_owner.setdefault(h, name)
        prints = res["meta"].get("episode_prints", [])
        shared: dict[str, int] = {}
        for h in prints:
            if h in print_owner and print_owner[h] != name:
                shared[print_owner[h]] = shared.get(print_owner[h], 0) + 1
            print_owner.setdefault(h, name)
        for other, k in shared.items():
            if k >= max(3, NEAR_IDENTICAL * len(prints)):  # near-identical: episodes copied
                duplicates.setdefault(name, other)
                duplicates.setdefault(other, name)
    for p, name, res in zip(entries, names, results):
        errors = [f for f in res["findings"] if f["severity"] == "error"]
        if names.count(name) > 1:
            errors.insert(0, {"rule": "B703", "message": f"more than one entry for submitter "
                              f"{name!r} (directory and archive)", "file": ""})
        subs = res["meta"].get("submitters", [])
        if res["valid"] and subs != [name]:
            errors.insert(0, {"rule": "B704", "message": f"the results name submitter "
                              f"{', '.join(subs)}, not the entry's name {name!r}", "file": ""})
        if errors:
            invalid.append({"submission": name, "n_errors": len(errors),
                            "reasons": [f"{f['rule']}: {f['message']}"
                                        + (f" ({f['file']})" if f.get("file") else "")
                                        for f in errors[:5]]})
            continue
        if name in duplicates:
            flagged.append({"submission": name, "reason": f"B702: shares run evidence (a detail "
                            f"log, a trace or its episodes) with {duplicates[name]!r}: "
                            "identical or near-identical runs"})
            continue
        notes = sorted({f"{f['rule']}: {f['message']}" for f in res["findings"]
                        if f["severity"] == "warning"})
        for row in res["meta"].get("rows", []):
            row_notes = list(notes)
            if row.get("override"):
                row_notes.insert(0, "S202: hardware declaration override (ALLOW_MISMATCH)")
            if not _plausible(rules, row):
                row_notes.insert(0, "B701: needs reproduction (far beyond the reference on "
                                    "comparable hardware)")
            key = f"{row['benchmark']} / {row['scenario']} / {row['division']}"
            p99 = res.get("p99s", {}).get(f"{row['system']}/{row['benchmark']}") \
                if row["scenario"] == "Server" else None
            boards.setdefault(key, []).append({"submission": name, **row,
                                               "server_p99_ms": p99,
                                               "notes": "; ".join(row_notes)})
    references = {}
    for key, rows in boards.items():
        lower = _lower(rules, *key.split(" / ")[:2])
        rows.sort(key=lambda r: (r["value"] if lower else -r["value"], r["submission"]))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
        references[key] = ref = {**_reference(rules, key, rows), "lower_is_better": lower}
        for r in rows:
            r["speedup"] = _speedup(r.get("value"), ref["value"], lower)
    return {"profile": profile, "replay_per_run": replay, "replay_seed": replay_seed,
            "boards": dict(sorted(boards.items())), "invalid": invalid,
            "flagged": flagged, "references": dict(sorted(references.items()))}


def _lower(rules, benchmark: str, scenario: str) -> bool:
    """rules.yaml: whether the scenario's metric ranks lower first."""
    return benchmark in rules.benchmarks and rules.benchmark(benchmark).lower_is_better(scenario)


def _reference(rules, key: str, rows: list[dict]) -> dict:
    """What a board's speed-ups are over: the entry named `reference` on the board, else the
    reference submission's figure in rules.yaml, else nothing."""
    bench, scenario, _ = key.split(" / ")
    entry = next((r for r in rows if r["submission"] == REFERENCE_ENTRY), None)
    if entry is not None and isinstance(entry.get("value"), (int, float)):
        return {"value": entry["value"], "source": f"the entry {REFERENCE_ENTRY!r} on this board"}
    ref = rules.checker.get("reference_results", {}).get(bench, {})
    value = ref.get(scenario) if isinstance(ref, dict) else None
    if isinstance(value, (int, float)) and value > 0:
        return {"value": value, "source": "the reference submission's figure in rules.yaml "
                f"(checker.reference_results: results/closed/reference, {ref.get('cores', '?')} "
                "cores; no entry named 'reference' on this board)"}
    return {"value": None, "source": "none (no entry named 'reference' on this board and no "
            "reference figure in rules.yaml for this scenario)"}


def _speedup(value, ref, lower_is_better: bool) -> float | None:
    if not isinstance(value, (int, float)) or not isinstance(ref, (int, float)) or \
            value <= 0 or ref <= 0:
        return None
    return round(ref / value if lower_is_better else value / ref, 3)


COLUMNS = ("rank", "submission", "system", "system_name", "accelerator", "metric", "value",
           "speedup", "server_p99_ms", "quality_metric", "quality", "notes")


def _columns(key: str) -> tuple[str, ...]:
    """A board's columns: the Server p99 only on Server boards (the CSV keeps them all)."""
    return COLUMNS if key.split(" / ")[1] == "Server" else \
        tuple(c for c in COLUMNS if c != "server_p99_ms")


def to_markdown(data: dict) -> str:
    lines = [f"# Leaderboard (profile {data['profile']})", ""]
    for key, rows in data["boards"].items():
        cols = _columns(key)
        ref = data.get("references", {}).get(key, {})
        lines += [f"## {key}", "", f"speedup: over {markdown(ref.get('value'))} "
                  f"({markdown(ref.get('source', 'none'))})", "",
                  "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            cells = [markdown(r.get(c, "")) for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Flagged for review (not ranked)", ""]
    for fl in data.get("flagged", []):
        lines.append(f"- **{markdown(fl['submission'])}**: {markdown(fl['reason'])}")
    if not data.get("flagged"):
        lines.append("none")
    lines += ["", "## Invalid submissions", ""]
    for inv in data["invalid"]:
        lines.append(f"- **{markdown(inv['submission'])}** ({inv['n_errors']} errors): "
                     + markdown("; ".join(inv["reasons"])))
    if not data["invalid"]:
        lines.append("none")
    return "\n".join(lines) + "\n"


def to_csv(data: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["benchmark", "scenario", "division", *COLUMNS])
    for key, rows in data["boards"].items():
        b, s, d = key.split(" / ")
        for r in rows:
            w.writerow([csv_cell(x) for x in (b, s, d, *[r.get(c, "") for c in COLUMNS])])
    return buf.getvalue()


def _cell(row: dict, col: str):
    """A row's value for the page: the p99 to 0.1 ms (the JSON and CSV keep it whole)."""
    v = row.get(col)
    return f"{v:.1f}" if col == "server_p99_ms" and isinstance(v, float) else v


def to_html(data: dict) -> str:
    e = lambda v: html.escape(text(v if v is not None else ""), quote=True)  # noqa: E731
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>Leaderboard ({e(data['profile'])})</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:90rem}"
             "table{border-collapse:collapse;margin-bottom:2rem}th,td{border:1px solid #ccc;"
             "padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}"
             ".invalid li{color:#a00}.chart svg{max-width:100%;height:auto}"
             ".wide{overflow-x:auto}.wide table{font-size:.85rem}"
             ".wide td,.wide th{padding:.25rem .45rem}"
             ".ref{color:#333}</style></head><body>",
             f"<h1>Leaderboard <small>(profile {e(data['profile'])})</small></h1>",
             "<p>speedup: the entry's figure over the reference's (for a latency metric, the "
             "reference's over the entry's), the reference named under each board. "
             "server_p99_ms: LoadGen's 99th percentile episode latency of the Server "
             "performance run, in ms.</p>"]
    for i, (key, rows) in enumerate(data["boards"].items()):
        cols = _columns(key)
        ref = data.get("references", {}).get(key, {})
        parts.append(f"<h2>{e(key)}</h2>")
        chart = bar_chart_svg(key, rows, ref.get("value"), i, ref.get("lower_is_better", False))
        parts.append(f"<div class=\"chart\">{chart}</div>")
        parts.append("<p class=\"ref\">Speed-ups are over "
                     + (f"{e(ref['value'])} {e(rows[0].get('metric'))}: "
                        if ref.get("value") is not None else "nothing: ")
                     + f"{e(ref.get('source', 'none'))}.</p><div class=\"wide\"><table><thead><tr>"
                     + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr></thead><tbody>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{e(_cell(r, c))}</td>" for c in cols) + "</tr>")
        parts.append("</tbody></table></div>")
    parts.append("<h2>Flagged for review (not ranked)</h2><ul>")
    parts += [f"<li><b>{e(fl['submission'])}</b>: {e(fl['reason'])}</li>"
              for fl in data.get("flagged", [])] or ["<li>none</li>"]
    parts.append("</ul><h2>Invalid submissions</h2><ul class=\"invalid\">")
    for inv in data["invalid"]:
        parts.append(f"<li><b>{e(inv['submission'])}</b> ({inv['n_errors']} errors)<ul>"
                     + "".join(f"<li>{e(x)}</li>" for x in inv["reasons"]) + "</ul></li>")
    if not data["invalid"]:
        parts.append("<li>none</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


_SVG_ID = re.compile(r'(\bid="|href="#|url\(#)')


def bar_chart_svg(key: str, rows: list[dict], ref_value, index: int,
                  lower_is_better: bool = False) -> str:
    """One board's bar chart as inline SVG: an entry's figure per bar, best at the top, the
    reference dashed. Text is drawn as paths (no submission text becomes markup) and every
    SVG id gets the chart's prefix (several charts share one page)."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": f"c{index}"}):
        return _draw_bars(key, rows, ref_value, index, lower_is_better, Figure, FigureCanvasSVG)


def _draw_bars(key, rows, ref_value, index, lower_is_better, Figure, FigureCanvasSVG) -> str:
    shown = [r for r in rows if isinstance(r.get("value"), (int, float))][:CHART_ROWS]
    if not shown:
        return "<p>no figure to draw</p>"
    fig = Figure(figsize=(7.5, 0.9 + 0.32 * len(shown)), dpi=96, layout="constrained")
    FigureCanvasSVG(fig)
    ax = fig.subplots()
    names = [text(f"{r['rank']}. {r['submission']}", 40).replace("$", r"\$") for r in shown]
    values = [r["value"] for r in shown]
    bars = ax.barh(range(len(shown)), values, height=0.6, color=["tab:orange" if r["submission"] ==
                                                     REFERENCE_ENTRY else "tab:blue"
                                                     for r in shown])
    ax.bar_label(bars, labels=[f"{v:,.4g}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(range(len(shown)), names, fontsize=8)
    ax.invert_yaxis()
    if isinstance(ref_value, (int, float)):
        ax.axvline(ref_value, color="tab:red", linestyle="--", linewidth=1.2, zorder=3,
                   label=f"reference {ref_value:,.4g}")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlim(0, max(values + [ref_value if isinstance(ref_value, (int, float)) else 0])
                * 1.18)
    metric = text(shown[0].get("metric") or "value", 60).replace("$", r"\$")
    ax.set_xlabel(metric + (" (lower is better)" if lower_is_better else " (higher is better)"),
                  fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML
    return _SVG_ID.sub(lambda m: f"{m.group(1)}c{index}-", svg)


def build_leaderboard(folder: Path, out: Path, profile: str = "official",
                      workers: int = 2, replay: int | None = None,
                      replay_seed: int | None = None) -> dict:
    data = collect(Path(folder), profile, workers, replay, replay_seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(
        json.dumps(json_value(data), indent=1, allow_nan=False) + "\n")
    (out / "leaderboard.md").write_text(to_markdown(data))
    (out / "leaderboard.csv").write_text(to_csv(data))
    (out / "index.html").write_text(to_html(data))
    n_valid = len({r["submission"] for rows in data["boards"].values() for r in rows})
    print(f"{n_valid} ranked, {len(data['flagged'])} flagged, {len(data['invalid'])} invalid "
          f"submissions; wrote {out}/"
          "{leaderboard.md,leaderboard.csv,leaderboard.json,index.html}")
    return data
