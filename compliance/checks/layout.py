"""L1xx: the submission layout (rules.md section 7)."""
from __future__ import annotations

from compliance.checks import err
from compliance.context import (ACCURACY_FILES, AUDIT_FILES, AUDITS, PERFORMANCE_FILES,
                                REQUIRED_SCENARIOS, RESULT_FILES, Ctx)
from loadgen_harness.untrusted.tree import COMPRESSIBLE
from reference.rules import SCENARIOS


def required_files(ctx: Ctx, rule: str):
    """every file of the layout is present and a regular file.

    Why: each file is evidence for a figure (LoadGen's logs, the accuracy log, the trace, the
    audits); a missing one means that figure cannot be verified.

    Fix: run `make submission` again (a re-run for some benchmarks keeps the others); when
    a whole result is missing, archive the submission directory again, complete. Findings
    on files below a missing directory follow from it and are listed under it."""
    t = ctx.tree
    for rel in ("submission.json", "code/README.md"):
        if not t.is_file(rel):
            yield err(rule, rel, "required file is missing", expected="a regular file",
                      found=t.kind(rel), hint="run `make submission` again; do not edit by hand")
    if not ctx.systems:
        yield err(rule, "results", "no results/<system> directory", expected=">= 1 system",
                  found="none")
    index, problem = t.json("submission.json")
    if t.is_file("submission.json"):
        systems = index.get("systems") if isinstance(index, dict) else None
        if not isinstance(systems, dict):
            yield err(rule, "submission.json", "submission index unreadable or malformed",
                      expected='{"systems": {...}}', found=problem or type(index).__name__)
        else:
            for s in ctx.systems:
                entry = systems.get(s)
                prof = entry.get("profile") if isinstance(entry, dict) else None
                if not isinstance(prof, str) or prof not in ctx.rules.profiles:
                    yield err(rule, "submission.json",
                              f"system {s!r} is not indexed with its profile",
                              location=f"/systems/{s}", expected="{profile: ...}", found=entry)
    for s in ctx.systems:
        rel = f"systems/{s}.json"
        if not t.is_file(rel):
            yield err(rule, rel, f"system {s!r} has results but no declaration",
                      expected="a regular file", found=t.kind(rel))
        benches = [b for b in t.listdir(f"results/{s}") if b in ctx.rules.benchmarks]
        if not benches:
            yield err(rule, f"results/{s}", "no benchmark results for this system",
                      expected=", ".join(ctx.rules.benchmarks), found="none")
        for b in benches:
            for sc in REQUIRED_SCENARIOS:
                if t.kind(f"results/{s}/{b}/{sc}") != "dir":
                    yield err(rule, f"results/{s}/{b}/{sc}", f"{b} has no {sc} result",
                              expected="a directory", found=t.kind(f"results/{s}/{b}/{sc}"),
                              hint="every benchmark needs Offline and Server results")
    for r in ctx.results:
        for name in RESULT_FILES:
            if not t.is_file(r.file(name)):
                yield err(rule, r.file(name), "required file is missing",
                          expected="a regular file", found=t.kind(r.file(name)))
        audits = [(f"{r.rel}/audit/{a}", AUDIT_FILES) for a in AUDITS]
        for base, names in [(r.acc, ACCURACY_FILES), (r.perf, PERFORMANCE_FILES), *audits]:
            for name in names:
                rel = f"{base}/{name}"
                if not t.is_file(rel):
                    yield err(rule, rel, "required file is missing", expected="a regular file",
                              found=t.kind(rel))


def no_links_or_leftovers(ctx: Ctx, rule: str):
    """no links, special files, or leftovers of an interrupted run."""
    for rel, kind in ctx.tree.walk():
        name = rel.rsplit("/", 1)[-1]
        if kind == "link":
            yield err(rule, rel, "links are not allowed in a submission", found="link",
                      hint="copy the file instead")
        elif kind == "special":
            yield err(rule, rel, "special files are not allowed in a submission",
                      found="device, socket or pipe")
        elif name.startswith((".staging-", ".old-")) or name.endswith(".tmp"):
            yield err(rule, rel, "leftover of an interrupted `make submission`",
                      found=name, hint="delete it and run `make submission` again")
        elif name.endswith(".gz") and name[:-3] in COMPRESSIBLE and \
                ctx.tree.kind(rel[:-3]) != "missing" and ctx.tree.stored_as(rel[:-3]) == rel[:-3]:
            yield err(rule, rel, "a file stored both plain and compressed",
                      found=f"{name[:-3]} and {name}", hint="keep one of them")


def known_names(ctx: Ctx, rule: str):
    """every directory under results/<system>/ names a known benchmark and scenario."""
    t = ctx.tree
    for s in ctx.systems:
        for b in t.listdir(f"results/{s}"):
            if b not in ctx.rules.benchmarks:
                yield err(rule, f"results/{s}/{b}", f"unknown benchmark {b!r}",
                          expected=", ".join(ctx.rules.benchmarks), found=b)
                continue
            for sc in t.listdir(f"results/{s}/{b}"):
                if sc not in SCENARIOS:
                    yield err(rule, f"results/{s}/{b}/{sc}", f"unknown scenario {sc!r}",
                              expected=", ".join(SCENARIOS), found=sc)
