"""A course's folder of submissions: its entries (each a directory or an archive; hidden
names and links skipped) and the submitter each is named after. The leaderboard, `compliance
reproduce` and the CLI's progress read a folder through these."""
from __future__ import annotations

from pathlib import Path

from compliance.archive import is_archive
from compliance.checks.identity import entry_name


def course_entries(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or p.name.startswith("."):
            continue
        if p.is_dir() or (p.is_file() and is_archive(p)):
            out.append(p)
    return out


def entry_of(p: Path) -> str:
    """The submitter an entry (directory or archive) is named after."""
    return entry_name(p.name)
