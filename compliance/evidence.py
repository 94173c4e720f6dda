"""Evidence that several checks read, parsed once: the accuracy log's entries. A check module
imports what it shares from here, never from another check (compliance/checks/ import no
sibling for a shared parse: no cycles)."""
from __future__ import annotations

import re

from compliance.context import Ctx

HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})*$")
MAX_ANSWER_BYTES = 4096


def parse_accuracy_log(ctx: Ctx, r):
    """(entries, problem): entries are (qsl_idx, answer, position) of well-formed items."""
    rel = f"{r.acc}/mlperf_log_accuracy.json"
    data, problem = ctx.tree.json(rel)
    if data is None:
        return None, problem
    if not isinstance(data, list):
        return None, f"expected a JSON list, found {type(data).__name__}"
    out, bad = [], []
    for i, e in enumerate(data):
        if not (isinstance(e, dict) and isinstance(e.get("qsl_idx"), int)
                and not isinstance(e.get("qsl_idx"), bool)
                and isinstance(e.get("data"), str) and HEX.match(e["data"])
                and len(e["data"]) <= 2 * MAX_ANSWER_BYTES):
            bad.append(i)
            continue
        answer = bytes.fromhex(e["data"]).decode("utf-8", errors="replace")
        out.append((e["qsl_idx"], answer, i))
    if bad:  # a log with malformed entries is unusable as a whole: Q401 reports it
        return None, f"{len(bad)} malformed entries (first at /{bad[0]})"
    return out, ""
