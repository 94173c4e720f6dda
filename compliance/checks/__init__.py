"""The checker's rules, one pure function each, grouped by area (see compliance.registry)."""
from __future__ import annotations

from compliance.findings import Finding, Severity


def err(rule: str, file: str, message: str, **kw) -> Finding:
    return Finding(rule, Severity.ERROR, file, message, **{k: str(v) for k, v in kw.items()})


def warn(rule: str, file: str, message: str, **kw) -> Finding:
    return Finding(rule, Severity.WARNING, file, message, **{k: str(v) for k, v in kw.items()})
