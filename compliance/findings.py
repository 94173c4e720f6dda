"""Findings: what the checker reports, one per problem, never a bare bool."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"      # the submission is invalid
    WARNING = "warning"  # valid, but a reviewer should look
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    rule: str                  # rule id, e.g. "G301"
    severity: Severity
    file: str                  # path relative to the submission root ("" for the whole)
    message: str               # what is wrong, in one sentence
    location: str = ""         # "line 12" or a JSON pointer "/performance/value"
    expected: str = ""
    found: str = ""
    hint: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["severity"] = self.severity.value
        return d


@dataclass
class Report:
    """All findings for one submission."""
    path: str
    findings: list[Finding] = field(default_factory=list)
    meta: dict = field(default_factory=dict)   # what was checked: systems, results, profile

    @property
    def valid(self) -> bool:
        return not any(f.severity == Severity.ERROR for f in self.findings)

    def rule_ids(self) -> set[str]:
        return {f.rule for f in self.findings}

    def to_dict(self) -> dict:
        return {"path": self.path, "valid": self.valid, "meta": self.meta,
                "findings": [f.to_dict() for f in self.findings]}
