"""The code of a submission (`code/` in the layout): what produced it, so it can be re-run.

    code/code.json    suite_commit, dirty, the files below with their SHA-256, patch size
    code/patch.diff   every change against suite_commit: tracked edits (and local commits not
                      in the suite's history) plus untracked source files (only when dirty)
    code/system.yaml  the system file the run read
    code/README.md    the same, for people

`make submission` writes it (`write_code`); the checker's L106 verifies it (`verify_code`);
`compliance reproduce` rebuilds the tree from it (`materialise`). The patch is taken against
the newest commit of the suite's published history (the upstream branch when there is one,
else HEAD), so a student's local commits travel in the patch too.

Limits: untracked files count only when they look like source (`SOURCE_SUFFIXES`) and are not
git-ignored; results/ and build/ are never part of the code; the patch is bounded
(rules.yaml checker.max_code_patch_bytes), and a larger one stops `make submission` with the
reason. It does not bundle a model checkpoint of the open division: that is named by its
SHA-256 in measurements.json and has to be handed in beside the submission.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from reference.rules import ROOT

SCHEMA_VERSION = 1
SOURCE_SUFFIXES = {".py", ".c", ".h", ".cc", ".cpp", ".cu", ".yaml", ".yml", ".json", ".toml",
                   ".cfg", ".ini", ".md", ".txt", ".sh", ".jsonl"}
EXCLUDED = ("results", "build", ".venv")  # outputs and environments, never code
COMMIT = re.compile(r"[0-9a-f]{40}")


class CodeError(Exception):
    """The code cannot be bundled (a patch over its bound) or rebuilt (a bad bundle)."""


def _git(*args, cwd: Path = ROOT, env=None, data: bytes | None = None) -> bytes | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, input=data,
                              capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def base_commit(root: Path = ROOT) -> str | None:
    """The newest commit of the suite's published history under HEAD: the merge base with the
    upstream branch (a student's local commits are then part of the patch), else HEAD."""
    for ref in ("@{upstream}", "origin/HEAD"):
        out = _git("merge-base", "HEAD", ref, cwd=root)
        if out:
            return out.decode().strip()
    out = _git("rev-parse", "HEAD", cwd=root)
    return out.decode().strip() if out else None


def working_patch(base: str, root: Path = ROOT) -> tuple[bytes, list[str]]:
    """The binary patch from `base` to the working tree (tracked changes and untracked
    source files; results/, build/ and .venv/ left out) and the untracked files it adds."""
    untracked_out = _git("ls-files", "--others", "--exclude-standard", "-z", cwd=root) or b""
    untracked = sorted(p for p in untracked_out.decode(errors="replace").split("\0")
                       if p and Path(p).suffix in SOURCE_SUFFIXES
                       and p.split("/", 1)[0] not in EXCLUDED)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git("read-tree", "HEAD", cwd=root, env=env)
        _git("add", "-u", "--", ".", cwd=root, env=env)
        if untracked:
            _git("add", "--", *untracked, cwd=root, env=env)
        excludes = [f":(exclude){e}" for e in EXCLUDED]
        patch = _git("diff", "--cached", "--binary", "--full-index", base, "--", ".",
                     *excludes, cwd=root, env=env)
    if patch is None:
        raise CodeError("git could not compute the patch of this working tree")
    return patch, untracked


def write_code(dest: Path, system: str, system_file: Path, max_patch_bytes: int,
               root: Path = ROOT) -> dict:
    """Write code/ into `dest` (a new directory); returns code.json's content."""
    base = base_commit(root)
    if base is None:
        raise CodeError("the suite is not a git checkout: the submission cannot name its code")
    patch, untracked = working_patch(base, root)
    if len(patch) > max_patch_bytes:
        raise CodeError(
            f"the changes to the suite come to {len(patch):,} bytes of patch, over the "
            f"{max_patch_bytes:,} bytes a submission carries (rules.yaml checker."
            f"max_code_patch_bytes); commit or remove large files (results and build outputs "
            f"are left out already)")
    dest.mkdir(parents=True)
    files = {"system.yaml": system_file.read_bytes()}
    if patch:
        files["patch.diff"] = patch
    for name, data in files.items():
        (dest / name).write_bytes(data)
    doc = {"schema_version": SCHEMA_VERSION, "suite_commit": base, "dirty": bool(patch),
           "system": system, "untracked": untracked, "patch_bytes": len(patch),
           "files": {name: sha256(data) for name, data in files.items()}}
    (dest / "code.json").write_text(json.dumps(doc, indent=1) + "\n")
    (dest / "README.md").write_text(
        f"# Code\n\nThis submission was produced by commit `{base}` of the suite"
        + (f" with the changes in `patch.diff` ({len(patch):,} bytes"
           f"{', ' + str(len(untracked)) + ' new files' if untracked else ''})" if patch else "")
        + f", and the system file `system.yaml` (`systems/{system}.yaml`).\n\n"
        f"Reproduce: `python -m compliance reproduce <this submission>`"
        + (" --allow-code" if patch else "") + "\n")
    return doc


def verify_code(doc, read) -> list[tuple[str, str, str]]:
    """Problems of a code bundle: (file, what, found) each. `read(name)` returns the bytes of
    code/<name> or None. Pure: it checks what the bundle says of itself."""
    if not isinstance(doc, dict):
        return [("code/code.json", "code.json is not a JSON object", type(doc).__name__)]
    out = []
    commit = doc.get("suite_commit")
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        out.append(("code/code.json", "suite_commit is not a 40-digit commit id", repr(commit)))
    files = doc.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in files.items()):
        return out + [("code/code.json", "files is not a map of name to SHA-256",
                       type(files).__name__)]
    for name in ("system.yaml",) + (("patch.diff",) if doc.get("dirty") else ()):
        if name not in files:
            out.append(("code/code.json", f"{name} is not listed",
                        "dirty tree, no patch" if name == "patch.diff" else "no system file"))
    if not doc.get("dirty") and "patch.diff" in files:
        out.append(("code/code.json", "a patch is listed, but the tree is said to be clean",
                    "dirty: false"))
    for name, digest in sorted(files.items()):
        if "/" in name or name.startswith(".") or name in ("code.json", "README.md"):
            out.append(("code/code.json", f"files names {name!r}", "not a bundle file"))
            continue
        data = read(name)
        if data is None:
            out.append((f"code/{name}", "listed in code.json but missing", "missing"))
        elif sha256(data) != digest:
            out.append((f"code/{name}", "SHA-256 differs from code.json's",
                        f"{sha256(data)[:16]}... (code.json: {digest[:16]}...)"))
    return out


def commit_known(commit: str, root: Path = ROOT) -> bool | None:
    """Whether the suite's history holds this commit (None: this suite is no git checkout)."""
    if _git("rev-parse", "--git-dir", cwd=root) is None:
        return None
    return _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=root) is not None


def patch_applies(commit: str, patch: bytes, root: Path = ROOT) -> str:
    """'' when the patch applies to the commit's tree, else git's reason (in an index of its
    own: neither the work tree nor the repository's index is touched)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if _git("read-tree", commit, cwd=root, env=env) is None:
            return f"commit {commit[:12]} cannot be read"
        try:
            r = subprocess.run(["git", "apply", "--cached", "--check", "-"], cwd=root, env=env,
                               input=patch, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
        return "" if r.returncode == 0 else r.stderr.decode(errors="replace").strip()[:300]


def patch_paths(patch: bytes) -> list[str]:
    """The paths a patch touches (from its `diff --git a/X b/Y` headers)."""
    out = []
    for line in patch.decode(errors="replace").splitlines():
        if line.startswith("diff --git "):
            out.append(line.split(" b/", 1)[-1])
    return sorted(set(out))


def materialise(commit: str, patch: bytes | None, dest: Path, root: Path = ROOT) -> Path:
    """A scratch tree of `commit` (plus `patch`) at dest, made from the suite's repository
    (a detached `git worktree`, removed by `discard`)."""
    if _git("worktree", "add", "--detach", "--force", str(dest), commit, cwd=root) is None:
        raise CodeError(f"cannot check out commit {commit[:12]} (is it in this suite's history?)")
    if patch:
        r = subprocess.run(["git", "apply", "--binary", "-"], cwd=dest, input=patch,
                           capture_output=True)
        if r.returncode != 0:
            discard(dest, root)
            raise CodeError(f"the patch does not apply: {r.stderr.decode(errors='replace')[:300]}")
    return dest


def discard(dest: Path, root: Path = ROOT) -> None:
    _git("worktree", "remove", "--force", str(dest), cwd=root)
    shutil.rmtree(dest, ignore_errors=True)
    _git("worktree", "prune", cwd=root)
