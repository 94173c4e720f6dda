"""The compliance checker's command line.

    python -m compliance check results/closed/reference          # table; exit 0 valid, 1 not
    python -m compliance check alice.tar.gz --json                # machine-readable
    python -m compliance check results/closed/alice --replay 4    # and re-run 4 episodes
    python -m compliance check results/closed/me --profile smoke  # a smoke submission
    python -m compliance explain G301                             # a rule's documentation
    python -m compliance rules                                    # every rule
    python -m compliance leaderboard submissions/ --out board/    # a course's leaderboard

Exit codes: 0 valid, 1 invalid, 2 usage error. Nothing from a submission is ever executed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from compliance.findings import Report
from reference.rules import RulesError, load_rules

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2, as argparse does, with our wording
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def print_report(report: Report, seconds: float) -> None:
    from rich.console import Console
    from rich.markup import escape as _escape

    from compliance.safe import text as _text

    def escape(value) -> str:  # submission text: control characters shown, markup inert
        return _escape(_text(value, limit=2000))
    con = Console(highlight=False)
    verdict = "[green]VALID[/green]" if report.valid else "[red]INVALID[/red]"
    con.print(f"{escape(report.path)}: {verdict}  ({len(report.findings)} findings, "
              f"{len(report.meta.get('results', []))} results, checked in {seconds:.2f} s)")
    if "replay_seed" in report.meta:
        con.print(f"replay: {report.meta.get('replay_per_run')} episodes per run, seed "
                  f"{report.meta['replay_seed']} (--replay-seed repeats it)")
    colour = {"error": "red", "warning": "yellow", "info": "blue"}
    for f in report.findings:
        sev = f.severity.value
        where = f"{f.file} {f.location}".strip()
        con.print(f"[bold]{f.rule}[/bold] [{colour[sev]}]{sev}[/{colour[sev]}]  {escape(where)}")
        line = f.message
        if f.expected or f.found:
            line += f": expected {f.expected or '-'}, found {f.found or '-'}"
        con.print(f"      {escape(line)}")
        if f.hint:
            con.print(f"      [dim]hint: {escape(f.hint)}[/dim]")


def main(argv=None) -> int:
    ap = _Parser(prog="python -m compliance", description="Nano agent submission checker.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    c = sub.add_parser("check", help="validate one submission directory or archive")
    c.add_argument("path", type=Path, help="submission directory or .tar.gz/.tgz/.tar/.zip")
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
                   help="the replay's seed, to repeat a check's choice of episodes (default: "
                        "fresh randomness, printed in the report)")
    e = sub.add_parser("explain", help="print a rule's documentation")
    e.add_argument("rule", help="rule id, e.g. G301")
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
                    help="the course run's replay seed, one for every entry (default: fresh "
                         "randomness, written to leaderboard.json)")
    lb.add_argument("--workers", type=int, default=2, help="checks run in parallel")
    args = ap.parse_args(argv)

    if args.cmd == "explain":
        from compliance.registry import RULES_BY_ID
        rules = RULES_BY_ID.get(args.rule.upper())
        if rules is None:
            print(f"error: unknown rule {args.rule!r}; `python -m compliance rules` lists them",
                  file=sys.stderr)
            return EXIT_USAGE
        print("\n\n".join(f"{r.id} {r.name} (rules.md#{r.anchor or 'checker'})\n\n{r.doc}"
                          for r in rules))
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
        from compliance.leaderboard import build_leaderboard
        if not args.dir.is_dir():
            print(f"error: {args.dir} is not a directory", file=sys.stderr)
            return EXIT_USAGE
        build_leaderboard(args.dir, args.out, args.profile, args.workers, args.replay,
                          replay_seed=args.replay_seed)
        return 0

    from compliance.check import check_path
    if not args.path.exists():
        print(f"error: {args.path} does not exist", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    report = check_path(args.path, args.profile, replay=max(args.replay, 0),
                        replay_seed=args.replay_seed)
    seconds = time.perf_counter() - t0
    if args.json:
        from compliance.safe import json_value
        print(json.dumps(json_value({**report.to_dict(), "seconds": round(seconds, 3)}),
                         indent=1, allow_nan=False))
    else:
        print_report(report, seconds)
    return EXIT_VALID if report.valid else EXIT_INVALID
