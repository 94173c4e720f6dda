"""SHA-256 of a file: how rules.yaml pins evaluation sets, checkpoints and reference results
(the harness records it, the checker and the tests compare it). No torch here."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
