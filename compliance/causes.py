"""Root causes: follow-on findings grouped under the finding that causes them.

    groups = group(report.findings)   # [Group(cause, follow_on), ...] in report order

One mistake often yields many findings: a truncated archive stops extraction, and every file
after the cut is then "missing" or "empty"; a result directory that is missing makes each of its
files missing. Every finding is still reported (none is dropped); the follow-ons are listed under
their cause, so the reader fixes one thing first. Three causes are recognised:
- an unreadable archive (L104 "archive unreadable" or "unreadable member": truncated or
  corrupt): every other finding but the archive's other refusals follows from it;
- a missing directory (any error whose file is a directory found missing): the findings on files
  below it;
- a missing file (an error found "missing"): the other findings on that same file.
This module only groups; it never changes a verdict, and knows nothing of what a rule checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from compliance.findings import Finding

# archive.extract's words for an archive that stops early (truncated or corrupt)
UNREADABLE = ("archive unreadable", "unreadable member")


@dataclass
class Group:
    cause: Finding
    follow_on: list[Finding] = field(default_factory=list)


def _missing(f: Finding) -> bool:
    return f.found == "missing" and bool(f.file)


def _parent(cause: Finding, f: Finding) -> bool:
    """Whether `f` follows from `cause` (never itself)."""
    if cause is f:
        return False
    if cause.rule == "L104" and any(u in cause.message for u in UNREADABLE):
        return f.rule != "L104"
    if not _missing(cause) or not f.file:
        return False
    if "directory" in cause.expected:
        return f.file.startswith(cause.file.rstrip("/") + "/")
    return f.file == cause.file and f.rule != cause.rule


def group(findings: list[Finding]) -> list[Group]:
    """The findings as groups, each a cause and what follows from it, in report order. A
    finding that several causes explain goes under the broadest (an unreadable archive first,
    then the shortest missing path)."""
    causes = [f for f in findings if f.rule == "L104" or _missing(f)]
    causes.sort(key=lambda c: (c.rule != "L104", len(c.file)))
    owner: dict[int, int] = {}
    for f in findings:
        for c in causes:
            if _parent(c, f):
                owner[id(f)] = id(c)
                break
    # a cause that itself follows from another is listed under its own root
    def root(f: Finding) -> int:
        seen = set()
        k = id(f)
        while k in owner and k not in seen:
            seen.add(k)
            k = owner[k]
        return k
    out: dict[int, Group] = {}
    for f in findings:
        r = root(f)
        if r == id(f):
            out.setdefault(r, Group(f))
    for f in findings:
        r = root(f)
        if r != id(f):
            out[r].follow_on.append(f)
    return list(out.values())


def group_dicts(findings: list[dict]) -> list[dict]:
    """group() for findings as plain dicts (the leaderboard's): [{"cause", "follow_on"}]."""
    keys = ("rule", "file", "message", "location", "expected", "found", "hint")
    objs = [Finding(d.get("rule", ""), d.get("severity", "error"),
                    **{k: str(d.get(k) or "") for k in keys if k != "rule"})
            for d in findings]
    back = {id(o): d for o, d in zip(objs, findings)}
    return [{"cause": back[id(g.cause)], "follow_on": [back[id(f)] for f in g.follow_on]}
            for g in group(objs)]
