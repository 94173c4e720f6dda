"""A rule's documentation: what it checks, why it exists, how to fix it, and its rules.md anchor.

    python -m compliance explain G308      # text, from the rule's docstring
    explain_html(path)                      # explain.html beside the leaderboard's index.html

The source is the same as rules.md's rules table: each rule's docstring in compliance/checks/*
(or registry.BUILTIN_DOCS for the checker's own findings). A docstring may end with paragraphs
that start `Why:` and `Fix:`; the text before them says what the rule checks (its first
sentence is rules.md's table cell). A rule without them gets its area's reason and remedy
(AREAS below), which are true of every rule in the area. This module renders; it decides no
verdict.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

# per id prefix: (area, why such rules exist, how such a finding is usually fixed)
AREAS = {
    "L": ("layout",
          "the checker, the leaderboard and the instructor read fixed paths; a file that is "
          "missing or misplaced means a run that cannot be verified",
          "regenerate the submission with `make submission` rather than editing or moving "
          "files by hand; archive the directory as it is"),
    "S": ("system declaration",
          "figures are compared per hardware class; a declaration that the machine's own "
          "probe contradicts would put a result on the wrong board",
          "fix systems/<name>.yaml (`python -m loadgen_harness.system systems/<name>.yaml` "
          "pre-checks it) and run `make submission` again"),
    "G": ("LoadGen logs",
          "LoadGen's detail log is the evidence behind every figure; a figure is only as good "
          "as the run that LoadGen recorded",
          "run `make submission` again with the suite's settings (user.conf and rules.yaml); "
          "never edit a log or measurements.json"),
    "Q": ("quality",
          "a speed-up only counts at the benchmark's quality; the checker recomputes quality "
          "from the accuracy log and the frozen eval set instead of trusting a stated number",
          "make the system meet the quality target (closed division: the reference weights "
          "and greedy decoding) and submit again"),
    "A": ("audits",
          "audit runs catch shortcuts a single run cannot show: caching answers, outputs that "
          "differ between accuracy and performance mode, or answers of the wrong length",
          "remove the shortcut (no caching of episodes or answers, the same code path in "
          "both modes) and run `make submission` again; it runs the audits"),
    "T": ("agent traces",
          "the agent trace is the per-episode timing log; its steps, tool calls and times must "
          "add up and agree with LoadGen's logs, so a fabricated run is caught",
          "keep the harness's trace writer as it is and run `make submission` again"),
    "R": ("replay",
          "files that agree with each other prove nothing about a run; re-running episodes "
          "with the reference checkpoint is evidence the submitter could not choose",
          "closed-division episodes must be the reference checkpoint's greedy decoding; run "
          "the suite's engine unmodified (open division for other models)"),
    "B": ("leaderboard",
          "a course board ranks one honest run per student",
          "submit your own runs, once, under your own name"),
    "X": ("the checker",
          "a bug in the checker must never pass as a verdict on a submission",
          "report it with the submission; it is not the submitter's to fix"),
}


@dataclass(frozen=True)
class Explanation:
    id: str
    name: str
    anchor: str   # rules.md section
    what: str     # what the rule checks
    why: str
    fix: str

    @property
    def rules_md(self) -> str:
        return f"rules.md#{self.anchor or 'compliance'}"

    def text(self) -> str:
        return (f"{self.id} {self.name} ({self.rules_md})\n\n"
                f"What it checks:\n{_indent(self.what)}\n\n"
                f"Why it exists:\n{_indent(self.why)}\n\n"
                f"How to fix it:\n{_indent(self.fix)}")


def _indent(s: str) -> str:
    return "\n".join("  " + line for line in s.splitlines())


def _sentence(s: str) -> str:
    s = " ".join(s.split())
    return (s[:1].upper() + s[1:] + ("" if s.endswith(".") else ".")) if s else s


def parse(doc: str) -> tuple[str, str, str]:
    """(what, why, fix) from a docstring; why and fix are "" when it has no such paragraph."""
    what, why, fix = [], [], []
    cur = what
    for para in re.split(r"\n\s*\n", doc.strip()):
        head = para.lstrip()
        if head.startswith("Why:"):
            cur = why
            para = head[4:]
        elif head.startswith("Fix:"):
            cur = fix
            para = head[4:]
        cur.append(" ".join(para.split()))
    return "\n".join(what), " ".join(why), " ".join(fix)


def explain(rule) -> Explanation:
    """A registry Rule's explanation; the area's reason and remedy fill what the doc lacks."""
    what, why, fix = parse(rule.doc)
    area = AREAS.get(rule.id[:1], ("", "", ""))
    return Explanation(rule.id, rule.name, rule.anchor, _sentence(what) or "(undocumented)",
                       _sentence(why or area[1]), _sentence(fix or area[2]))


def all_explanations() -> list[Explanation]:
    """One per registry entry (an id with several checks, T602, has one per check)."""
    from compliance.registry import REGISTRY
    return [explain(r) for r in REGISTRY]


def explain_html(title: str = "Checker rules") -> str:
    """A self-contained page, one section per rule id (anchor `#G308`), for the board's links."""
    e = lambda v: html.escape(str(v), quote=True)  # noqa: E731
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{e(title)}</title><style>body{{font-family:system-ui,sans-serif;"
             "margin:2rem;max-width:60rem}section{border-top:1px solid #ddd;padding:.4rem 0}"
             "h2{font-size:1.1rem;margin:.6rem 0 .2rem}dt{font-weight:600;margin-top:.3rem}"
             "dd{margin-left:1rem}code{background:#f3f3f3;padding:0 .2rem}"
             ":target{background:#fff8d0}</style></head><body>",
             f"<h1>{e(title)}</h1><p>What each rule checks, why it exists and how to fix a "
             "finding; the same text as <code>python -m compliance explain RULE</code>. The "
             "sections are those of rules.md.</p>"]
    seen: set[str] = set()
    for x in all_explanations():
        anchor = "" if x.id in seen else f" id=\"{e(x.id)}\""
        seen.add(x.id)
        parts.append(f"<section{anchor}><h2>{e(x.id)} {e(x.name)} <small>({e(x.rules_md)})"
                     f"</small></h2><dl><dt>What it checks</dt><dd>{e(x.what)}</dd>"
                     f"<dt>Why it exists</dt><dd>{e(x.why)}</dd>"
                     f"<dt>How to fix it</dt><dd>{e(x.fix)}</dd></dl></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
