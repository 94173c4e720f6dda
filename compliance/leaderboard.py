"""A course leaderboard: validate every submission in a folder, rank the valid ones.

    python -m compliance leaderboard submissions/ --out board/

Writes board/leaderboard.{md,csv,json} and board/index.html (one self-contained page, no
scripts, every submission-supplied string escaped). Ranks are per benchmark, scenario and
division by the scenario's metric (Offline and Server: higher is better; SingleStream p90
latency: lower is better). Invalid submissions are listed with their reasons.
"""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from compliance.archive import is_archive
from compliance.check import check_path

LOWER_IS_BETTER = {"SingleStream"}


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


def collect(folder: Path, profile: str) -> dict:
    boards: dict[str, list[dict]] = {}
    invalid = []
    for p in _entries(folder):
        report = check_path(p, profile)
        if not report.valid:
            errors = [f for f in report.findings if f.severity.value == "error"]
            invalid.append({"submission": _name(p), "n_errors": len(errors),
                            "reasons": [f"{f.rule}: {f.message}" + (f" ({f.file})" if f.file else "")
                                        for f in errors[:5]]})
            continue
        for row in report.meta.get("rows", []):
            key = f"{row['benchmark']} / {row['scenario']} / {row['division']}"
            boards.setdefault(key, []).append({"submission": _name(p), **row})
    for key, rows in boards.items():
        lower = key.split(" / ")[1] in LOWER_IS_BETTER
        rows.sort(key=lambda r: (r["value"] if lower else -r["value"], r["submission"]))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
    return {"profile": profile, "boards": dict(sorted(boards.items())), "invalid": invalid}


COLUMNS = ("rank", "submission", "system", "system_name", "accelerator", "metric", "value",
           "quality_metric", "quality")


def to_markdown(data: dict) -> str:
    lines = [f"# Leaderboard (profile {data['profile']})", ""]
    for key, rows in data["boards"].items():
        lines += [f"## {key}", "", "| " + " | ".join(COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        for r in rows:
            cells = [str(r.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Invalid submissions", ""]
    for inv in data["invalid"]:
        lines.append(f"- **{inv['submission']}** ({inv['n_errors']} errors): "
                     + "; ".join(inv["reasons"]).replace("\n", " "))
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
            w.writerow([b, s, d, *[r.get(c, "") for c in COLUMNS]])
    return buf.getvalue()


def to_html(data: dict) -> str:
    e = lambda v: html.escape(str(v if v is not None else ""), quote=True)  # noqa: E731
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>Leaderboard ({e(data['profile'])})</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
             "table{border-collapse:collapse;margin-bottom:2rem}th,td{border:1px solid #ccc;"
             "padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}"
             ".invalid li{color:#a00}</style></head><body>",
             f"<h1>Leaderboard <small>(profile {e(data['profile'])})</small></h1>"]
    for key, rows in data["boards"].items():
        parts.append(f"<h2>{e(key)}</h2><table><thead><tr>"
                     + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{e(r.get(c))}</td>" for c in COLUMNS) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Invalid submissions</h2><ul class=\"invalid\">")
    for inv in data["invalid"]:
        parts.append(f"<li><b>{e(inv['submission'])}</b> ({inv['n_errors']} errors)<ul>"
                     + "".join(f"<li>{e(x)}</li>" for x in inv["reasons"]) + "</ul></li>")
    if not data["invalid"]:
        parts.append("<li>none</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


def build_leaderboard(folder: Path, out: Path, profile: str = "official") -> dict:
    data = collect(Path(folder), profile)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "leaderboard.md").write_text(to_markdown(data))
    (out / "leaderboard.csv").write_text(to_csv(data))
    (out / "index.html").write_text(to_html(data))
    n_valid = len({r["submission"] for rows in data["boards"].values() for r in rows})
    print(f"{n_valid} valid, {len(data['invalid'])} invalid submissions; wrote {out}/"
          "{leaderboard.md,leaderboard.csv,leaderboard.json,index.html}")
    return data
