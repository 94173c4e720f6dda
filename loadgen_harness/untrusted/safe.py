"""Making submission-supplied text safe to print or publish (rules.md section 9).

Every string a submission controls (directory names, file names, found values) passes through
one of these before it reaches a terminal, a Markdown file, a CSV cell or a JSON document:
- `text`: control characters (C0, C1, DEL) and bidirectional overrides become visible escapes,
  so an ANSI sequence in a directory name cannot draw a fake "VALID" line;
- `markdown`: `text`, then HTML and Markdown metacharacters escaped;
- `csv_cell`: `text`, then a cell that a spreadsheet would run as a formula is quoted;
- `json_value`: non-finite floats become None, so the output is strict JSON.
"""
from __future__ import annotations

import math
import re

# C0 and C1 controls, DEL, and the Unicode bidi/format characters that reorder or hide text
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def text(value, limit: int = 500) -> str:
    """A one-line, printable rendering of any value (escapes shown as \\xNN or \\uNNNN)."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > limit:
        s = s[:limit] + "..."

    def esc(m):
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    return _UNSAFE.sub(esc, s)


def markdown(value) -> str:
    """Safe inside a Markdown table cell or list item: no markup, no HTML, no line breaks."""
    s = text(value)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def csv_cell(value):
    """A CSV cell no spreadsheet runs as a formula (OWASP: prefix a quote)."""
    if value is None:
        return ""
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return value
    s = text(value)
    if s[:1] in ("=", "+", "-", "@", "\t", "\r", "|", "%"):
        s = "'" + s
    return s


def json_value(value):
    """The value with every non-finite float replaced by None (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value
