"""L106: the submission carries the code that produced it (rules.md section 7, issue 33)."""
from __future__ import annotations

from compliance.checks import err, warn
from compliance.context import Ctx
from loadgen_harness.codepack import commit_known, patch_applies, verify_code
from reference.yamlio import YamlError, load_yaml_text


def code_bundle(ctx: Ctx, rule: str):
    """the submission's code/ names the suite commit it ran, carries every change as a patch
    that applies to that commit, and the system file it read; every file matches the SHA-256
    that code/code.json lists, and the system file is the declaration in systems/.

    Why: no log can prove a timing; a re-run can (`compliance reproduce`), and only if the
    code that ran travels with the figures. A tree with uncommitted changes and no patch, a
    patch that does not apply, or a system file other than the declared one cannot be re-run.

    Fix: run `make submission` again from the tree you want to submit; never edit code/ by
    hand. Commit locally or leave changes uncommitted: both travel in the patch."""
    t = ctx.tree
    doc, problem = t.json("code/code.json")
    if doc is None:
        yield err(rule, "code/code.json", "the submission carries no code bundle",
                  expected="code/code.json, written by make submission",
                  found=problem or t.kind("code/code.json"),
                  hint="run `make submission` again (submissions before issue 33 lack it)")
        return

    def read(name):
        data, _ = t.bytes(f"code/{name}")
        return data

    problems = verify_code(doc, read)
    for file, what, found in problems:
        yield err(rule, file, what, found=found, hint="code/ is written by make submission, "
                  "never by hand")
    if problems:
        return
    commit = doc["suite_commit"]
    index, _ = t.json("submission.json")
    system = doc.get("system")
    entry = (index.get("systems") or {}).get(system) if isinstance(index, dict) and \
        isinstance(index.get("systems"), dict) else None
    if system not in ctx.systems:
        yield err(rule, "code/code.json", "the code bundle names a system without results",
                  expected=", ".join(ctx.systems), found=system)
    elif isinstance(entry, dict) and entry.get("dirty") is True and not doc.get("dirty"):
        yield err(rule, "code/code.json", "the run's tree had uncommitted changes, but the code "
                  "bundle carries no patch", expected="dirty: true with patch.diff",
                  found="dirty: false")
    # the system file is the declaration the results name
    text = (read("system.yaml") or b"").decode("utf-8", errors="replace")
    try:
        sysdoc = load_yaml_text(text)
    except YamlError as e:
        yield err(rule, "code/system.yaml", "the bundled system file is not valid YAML",
                  found=str(e)[:200])
        sysdoc = None
    declared, _ = t.json(f"systems/{system}.json")
    if isinstance(sysdoc, dict) and isinstance(declared, dict):
        for key in ("declaration", "tuning"):
            if sysdoc.get(key) != declared.get(key):
                yield err(rule, "code/system.yaml", f"the bundled system file's {key} is not "
                          f"systems/{system}.json's", location=f"/{key}",
                          hint="the system file travels unchanged from the run")
    known = commit_known(commit)
    if known is None:
        yield warn(rule, "code/code.json", "this checker is not a git checkout: the suite "
                   "commit and the patch cannot be verified", found=commit[:12])
    elif not known:
        yield err(rule, "code/code.json", "the suite commit is not in this suite's history",
                  found=commit[:12], hint="submit from a clone of the course's suite; local "
                  "commits travel in the patch")
    elif doc.get("dirty"):
        why = patch_applies(commit, read("patch.diff") or b"")
        if why:
            yield err(rule, "code/patch.diff", "the patch does not apply to the suite commit",
                      expected=f"applies to {commit[:12]}", found=why)
