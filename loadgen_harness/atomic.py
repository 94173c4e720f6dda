"""Replacing a finished file or directory in one step: what a reader sees is the old one or
the new one, never a mix (a submission's results, a report)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def swap_path(new: Path, dst: Path) -> None:
    """Move `new` to `dst`, replacing what is there: the old one is renamed aside, the new one
    renamed in (one rename each, on one file system), and only then is the old one removed."""
    trash = dst.with_name(f".old-{dst.name}-{os.getpid()}")
    if dst.exists() or dst.is_symlink():
        dst.rename(trash)
    new.rename(dst)
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    elif trash.exists() or trash.is_symlink():
        trash.unlink()
