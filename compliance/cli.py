"""The compliance checker's command line.

    python -m compliance check results/closed/reference          # table; exit 0 valid, 1 not
    python -m compliance check results/closed                     # every submission in it
    python -m compliance check alice.tar.gz --json                # machine-readable
    python -m compliance check results/closed/alice --replay 4    # and re-run 4 episodes
    python -m compliance check results/closed/me --profile smoke  # a smoke submission
    python -m compliance explain G301 L101                        # what, why, how to fix
    python -m compliance rules                                    # every rule
    python -m compliance leaderboard submissions/ --out board/    # a course's leaderboard

Exit codes: 0 valid (every submission, for a folder of several), 1 invalid, 2 usage error,
130 interrupted (Ctrl-C: one line, no traceback). Nothing from a submission is ever executed.
Output that is not a terminal is plain lines, never wrapped or cut (paths stay whole); progress
goes to stderr, and only on a terminal.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from compliance.findings import Report
from reference.rules import RulesError, load_rules

EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2, as argparse does, with our wording
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _console(stderr: bool = False):
    """rich on a terminal (colour); elsewhere plain text that is never wrapped or cut."""
    from rich.console import Console
    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def _escape(value) -> str:  # submission text: control characters shown, markup inert
    from rich.markup import escape

    from loadgen_harness.untrusted.safe import text
    return escape(text(value, limit=2000))


@contextmanager
def progress(total: int, what: str):
    """A rich progress bar on stderr while `total` items are done, only when stderr is a
    terminal; yields advance(label) (a no-op elsewhere)."""
    if total <= 1 or not sys.stderr.isatty():
        yield lambda label="": None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                  console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total, last="")

        def advance(label: str = "") -> None:
            bar.update(task, advance=1, last=_escape(label))
        yield advance


def _finding_line(f: dict | object) -> tuple[str, str, str, str]:
    get = (lambda k: f.get(k, "")) if isinstance(f, dict) else (lambda k: getattr(f, k))
    sev = get("severity")
    sev = getattr(sev, "value", sev) or "error"
    where = f"{get('file')} {get('location')}".strip()
    line = get("message")
    if get("expected") or get("found"):
        line += f": expected {get('expected') or '-'}, found {get('found') or '-'}"
    return sev, where, line, get("hint")


def print_report(report: Report, seconds: float, con=None) -> None:
    from compliance.causes import group
    con = con or _console()
    verdict = "[green]VALID[/green]" if report.valid else "[red]INVALID[/red]"
    con.print(f"{_escape(report.path)}: {verdict}  ({_count(len(report.findings), 'finding')}, "
              f"{_count(len(report.meta.get('results', [])), 'result')}, "
              f"checked in {seconds:.2f} s)")
    colour = {"error": "red", "warning": "yellow", "info": "blue"}
    for g in group(report.findings):
        sev, where, line, hint = _finding_line(g.cause)
        con.print(f"[bold]{g.cause.rule}[/bold] [{colour[sev]}]{sev}[/{colour[sev]}]  "
                  f"{_escape(where)}")
        con.print(f"      {_escape(line)}")
        if hint:
            con.print(f"      [dim]hint: {_escape(hint)}[/dim]")
        if g.follow_on:
            rules = _tally(f.rule for f in g.follow_on)
            con.print(f"      [dim]{_count(len(g.follow_on), 'follow-on finding')} of this "
                      f"cause ({rules}):[/dim]")
            for f in g.follow_on:
                _, where, line, _ = _finding_line(f)
                con.print(f"        {f.rule} {_escape(where)}: {_escape(line)}")
    if "replay" in report.meta or "replay_seconds" in report.meta:
        _print_replay(report, con)
    rows = report.meta.get("results") or []
    if rows:
        from compliance.check import BASIS
        con.print(f"quality figures rest on evidence the checker owns ({BASIS['quality']}); "
                  f"{_count(len(rows), 'timing figure')} rest on {BASIS['timing']}: "
                  "`python -m compliance reproduce` re-runs them")


def _print_replay(report: Report, con) -> None:
    """What replay ran and what matched, as compliance.replay records it in meta["replay"]
    (free-form: a summary line and per-benchmark figures); else what is known from findings."""
    info = report.meta.get("replay")
    secs = report.meta.get("replay_seconds")
    took = f" in {secs:.1f} s" if isinstance(secs, (int, float)) else ""
    if isinstance(info, dict):
        head = info.get("summary") or ", ".join(f"{k} {v}" for k, v in info.items()
                                                 if not isinstance(v, (dict, list)))
        con.print(f"replay{took}: {_escape(head)}")
        for k, v in info.items():
            if isinstance(v, dict):
                con.print(f"  {_escape(k)}: "
                          + _escape(", ".join(f"{a} {b}" for a, b in v.items())))
            elif isinstance(v, list) and k != "summary":
                for item in v:
                    con.print(f"  {_escape(k)}: {_escape(item)}")
    elif isinstance(info, str):
        con.print(f"replay{took}: {_escape(info)}")
    else:
        r801 = [f for f in report.findings if f.rule == "R801"]
        n, seed = report.meta.get("replay_per_run"), report.meta.get("replay_seed")
        what = (f"up to {n} episodes of every closed-division run" if n else "episodes") + \
            (f" (seed {seed}; --replay-seed {seed} repeats the choice)" if seed is not None
             else "")
        runs = sorted({f.file for f in r801})
        con.print(f"replay{took}: {what} re-run with the reference checkpoint and compared "
                  "step by step (text, tokens, tool calls, observations, answer): "
                  + (f"{_count(len(runs), 'run')} differed, see R801 above" if r801 else
                     "every replayed episode matched its trace"))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _tally(rules) -> str:
    counts: dict[str, int] = {}
    for r in rules:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(r if k == 1 else f"{r} x{k}" for r, k in counts.items())


def _missing_path(path: Path) -> str:
    """One line for a path that does not exist, naming what its folder does hold."""
    line = f"error: {path} does not exist"
    parent = path.parent
    try:
        near = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
    except OSError:
        return line
    if near:
        shown = ", ".join(near[:12]) + (f", and {len(near) - 12} more" if len(near) > 12 else "")
        line += f" ({parent} holds: {shown})"
    return line


def _check_many(paths: list[Path], top: Path, args) -> int:
    """Every submission in a folder: one line each, then a summary; exit 0 only if all valid."""
    from compliance.check import check_path
    reports = []
    with progress(len(paths), f"checking {top}") as advance:
        for p in paths:
            t0 = time.perf_counter()
            report = check_path(p, args.profile, replay=max(args.replay, 0),
                                **_seed(args))
            reports.append((report, time.perf_counter() - t0))
            advance(p.name)
    n_valid = sum(r.valid for r, _ in reports)
    if args.json:
        from loadgen_harness.untrusted.safe import json_value
        doc = {"path": str(top), "valid": n_valid == len(reports),
               "submissions": [{**r.to_dict(), "seconds": round(s, 3)} for r, s in reports]}
        print(json.dumps(json_value(doc), indent=1, allow_nan=False))
    else:
        from compliance.causes import group
        con = _console()
        for r, s in reports:
            errors = [f for f in r.findings if f.severity.value == "error"]
            causes = [g.cause.rule for g in group(errors)]
            verdict = "[green]VALID[/green]" if r.valid else "[red]INVALID[/red]"
            why = f"; {_tally(causes)}" if causes else ""
            con.print(f"{_escape(r.path)}: {verdict}  ({_count(len(errors), 'error')}"
                      f"{_escape(why)}; {_count(len(r.meta.get('results', [])), 'result')}, "
                      f"{s:.2f} s)")
        con.print(f"{_count(len(reports), 'submission')} in {_escape(top)}: {n_valid} valid, "
                  f"{len(reports) - n_valid} invalid"
                  + ("; `python -m compliance check PATH` shows one's findings"
                     if n_valid < len(reports) else ""))
    return EXIT_VALID if n_valid == len(reports) else EXIT_INVALID


def _seed(args) -> dict:
    """replay_seed for check_path/build_leaderboard, only when given (else the checker draws)."""
    return {} if args.replay_seed is None else {"replay_seed": args.replay_seed}


def main(argv=None, keep: list | None = None) -> int:
    """The command line; `keep` (python -m compliance) receives a single check's parsed
    evidence so that the process can end without freeing it (compliance/__main__.py)."""
    try:
        return _main(argv, keep)
    except KeyboardInterrupt:  # one line, never a traceback; what was written stays whole
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv=None, keep: list | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["reproduce"]:  # its own parser (compliance/reproduce.py)
        from compliance.reproduce import main as reproduce_main
        return reproduce_main(argv[1:])
    ap = _Parser(prog="python -m compliance", description="Nano agent submission checker.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sub.add_parser("reproduce", help="re-run a submission's code on this machine and compare "
                                     "(python -m compliance reproduce --help)")
    c = sub.add_parser("check", help="validate a submission directory or archive, or every "
                                     "submission in a folder")
    c.add_argument("path", type=Path, help="submission directory, .tar.gz/.tgz/.tar/.zip, or a "
                                           "folder of several (each is checked)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    try:
        profiles = sorted(load_rules().profiles)  # rules.yaml names them (official, smoke)
    except RulesError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    c.add_argument("--profile", choices=profiles, default="official",
                   help="the profile the submission must be (smoke is never leaderboard-eligible)")
    c.add_argument("--replay", type=int, default=0, metavar="N",
                   help="re-run N episodes per benchmark of the closed division with the "
                        "reference checkpoint and compare them exactly (R801; imports torch)")
    c.add_argument("--replay-seed", type=int, default=None, metavar="SEED",
                   help="the replay's seed, to repeat a choice (default: fresh randomness, "
                        "printed in the report)")
    e = sub.add_parser("explain", help="what a rule checks, why, and how to fix a finding")
    e.add_argument("rule", nargs="+", help="rule ids, e.g. G301 L101")
    rl = sub.add_parser("rules", help="list every rule")
    rl.add_argument("--markdown", action="store_true", help="as the table in rules.md")
    lb = sub.add_parser("leaderboard", help="validate and rank a folder of submissions")
    lb.add_argument("dir", type=Path, help="folder of submission directories and/or archives")
    lb.add_argument("--out", type=Path, required=True, help="output folder")
    lb.add_argument("--profile", choices=profiles, default="official",
                    help="the profile the submissions must be")
    lb.add_argument("--replay", type=int, default=None, metavar="N",
                    help="episodes per benchmark replayed for each closed entry (R801; default "
                         "rules.yaml checker.leaderboard_replay; 0 turns replay off)")
    lb.add_argument("--replay-seed", type=int, default=None, metavar="SEED",
                    help="the course run's replay seed (default: fresh randomness, recorded "
                         "in leaderboard.json)")
    lb.add_argument("--workers", type=int, default=2, help="checks run in parallel")
    lb.add_argument("--reproduce", type=int, default=0, metavar="N",
                    help="re-run the top N of every board and every entry flagged B701 "
                         "(compliance reproduce, smoke profile); records beside the entries")
    lb.add_argument("--rank", choices=["submitted", "reproduced"], default="submitted",
                    help="rank by the submitted figures, or by reproduced ones (entries "
                         "without a reproduction listed unranked)")
    lb.add_argument("--nodes", type=Path, default=None, metavar="YAML",
                    help="the course's node types: which Ray resources a reproduction of "
                         "each system asks for (compliance/cluster.py)")
    lb.add_argument("--allow-code", action="store_true",
                    help="reproductions may run patched code (as nobody, no network)")
    lb.add_argument("--cluster", default=None, metavar="local|ADDRESS",
                    help="run each entry's check as a Ray task: `local` starts a cluster on "
                         "this machine, an address joins one (pip install -e '.[cluster]')")
    args = ap.parse_args(argv)

    if args.cmd == "explain":
        from compliance.explain import explain
        from compliance.registry import RULES_BY_ID
        unknown = [r for r in args.rule if r.upper() not in RULES_BY_ID]
        if unknown:
            print(f"error: unknown rule {', '.join(map(repr, unknown))}; "
                  "`python -m compliance rules` lists them", file=sys.stderr)
            return EXIT_USAGE
        print("\n\n".join(explain(r).text() for rid in args.rule
                          for r in RULES_BY_ID[rid.upper()]))
        return 0
    if args.cmd == "rules":
        from compliance.registry import REGISTRY, markdown_table
        if args.markdown:
            print(markdown_table())
            return 0
        for r in REGISTRY:
            print(f"{r.id}  {r.name:<30} rules.md#{r.anchor or 'checker'}  "
                  f"{r.doc.splitlines()[0] if r.doc else ''}")
        return 0
    if args.cmd == "leaderboard":
        from compliance.course import course_entries
        from compliance.leaderboard import build_leaderboard
        if not args.dir.is_dir():
            print(f"error: {args.dir} is not a directory (the folder of a course's "
                  "submissions: directories and/or archives)", file=sys.stderr)
            return EXIT_USAGE
        # Ray missing, the cluster unreachable, a bad node-type file: one line, before any work
        if args.cluster or args.nodes:
            from compliance.cluster import ClusterError, connect, load_node_types
            try:
                if args.nodes:
                    load_node_types(args.nodes)
                if args.cluster:
                    connect(args.cluster)
            except ClusterError as err:
                print(f"error: {err}", file=sys.stderr)
                return EXIT_USAGE
        with progress(len(course_entries(args.dir)), f"checking {args.dir}") as advance:
            build_leaderboard(args.dir, args.out, args.profile, args.workers, args.replay,
                              progress=advance, cluster=args.cluster,
                              reproduction={"reproduce_n": args.reproduce, "rank": args.rank,
                                            "nodes": args.nodes, "allow_code": args.allow_code},
                              **_seed(args))
        return 0

    from compliance.check import check_path, submissions_in
    if not args.path.exists():
        print(_missing_path(args.path), file=sys.stderr)
        return EXIT_USAGE
    many = submissions_in(args.path) if args.path.is_dir() else []
    if len(many) > 1:
        return _check_many(many, args.path, args)
    target = many[0] if many else args.path  # the submission found, not the folder's name
    t0 = time.perf_counter()
    report = check_path(target, args.profile, replay=max(args.replay, 0), keep=keep,
                        **_seed(args))
    seconds = time.perf_counter() - t0
    if args.json:
        from compliance.causes import group
        from loadgen_harness.untrusted.safe import json_value
        index = {id(f): i for i, f in enumerate(report.findings)}
        groups = [{"cause": index[id(g.cause)], "follow_on": [index[id(f)] for f in g.follow_on]}
                  for g in group(report.findings) if g.follow_on]
        print(json.dumps(json_value({**report.to_dict(), "groups": groups,
                                     "seconds": round(seconds, 3)}),
                         indent=1, allow_nan=False))
    else:
        print_report(report, seconds)
    return EXIT_VALID if report.valid else EXIT_INVALID
