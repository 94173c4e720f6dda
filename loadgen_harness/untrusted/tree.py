"""A read-only, never-raising view of an untrusted submission directory.

Every read is bounded (file size), refuses links and special files, and returns
(value, problem) instead of raising: a malformed file is a finding, never a crash. Parsed
files are cached so each is read once however many rules look at it.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import zlib
from pathlib import Path

MAX_FILE_BYTES = 64 * 2**20  # no legitimate file of a submission comes near this
# files a submission may store gzip-compressed as NAME.gz (the reference submission does, to
# keep the repository small); read as if plain, with the same size limit after decompression
COMPRESSIBLE = ("agent_trace.jsonl",)


def _gunzip(data: bytes) -> tuple[bytes | None, str]:
    """One gzip member, decompressed to at most MAX_FILE_BYTES (a bomb stops there)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, MAX_FILE_BYTES + 1)
    except zlib.error as err:
        return None, f"not a valid gzip file ({err})"
    if len(out) > MAX_FILE_BYTES or d.unconsumed_tail:
        return None, f"decompresses to over the {MAX_FILE_BYTES} byte limit"
    if not d.eof or d.unused_data:
        return None, "a truncated gzip file, or data after its end"
    return out, ""
MAX_INT_DIGITS = 24          # the longest honest integer is a 20-digit LoadGen seed
# a LoadGen detail log holds about 100 records (the reference's longest: 100 lines); past this
# many lines the rest is one malformed stretch, never parsed (64 MB of one-byte garbage lines
# took 40 s and 2 GB, and made a finding per line that said `error`)
MAX_LOG_LINES = 10_000
MAX_LISTED = 20              # lines listed per kind of log problem; __counts__ has them all
# Keys LoadGen itself logs more than once; any other key twice means an edited log.
REPEATABLE_KEYS = {"generic_message", "error", "warning"}


class StrictJSONError(ValueError):
    """A JSON document that Python's json would accept but a submission may not contain."""


def _pairs(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise StrictJSONError(f"duplicate key {dup[:40]!r}")
    return d


def _int(text):
    if len(text) > MAX_INT_DIGITS:
        raise StrictJSONError(f"integer of {len(text)} digits")
    return int(text)


def _float(text):
    v = float(text)
    if not math.isfinite(v):
        raise StrictJSONError(f"number {text[:40]} is not finite")
    return v


def _constant(name):
    raise StrictJSONError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                            parse_constant=_constant)


def strict_loads(text: str):
    """json.loads that refuses duplicate keys, NaN/Infinity, non-finite floats and huge
    integers (ValueError, with a short reason). Every submission file is read with it."""
    return _DECODER.decode(text)


_SPACED_COLON = re.compile(r'"\s+:')  # a key written `"k" :` escapes the quick count


def _lines(text: str) -> list[str]:
    """Records separated by \\n only (a trailing \\r dropped): what the record budget counts.
    A record separated by a lone \\r, \\u2028 or any other break is one malformed line."""
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [line[:-1] if line.endswith("\r") else line for line in out]


def has_duplicate_keys(line: str, n_keys: int) -> bool:
    """Whether a JSON line whose parsed value has n_keys keys in all spells more: every `":`
    outside a string ends a key (inside one a quote is escaped), so a duplicate key makes the
    text count larger; only then is the line parsed strictly to be sure."""
    if line.count('":') - line.count('\\":') == n_keys and not _SPACED_COLON.search(line):
        return False
    try:
        strict_loads(line)
    except ValueError as err:
        return "duplicate key" in str(err)
    return False


def _why(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON at line {err.lineno}: {err.msg}"
    if isinstance(err, RecursionError):
        return "not valid JSON: nested too deeply"
    return f"not valid JSON: {str(err)[:120]}"


class Tree:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._cache: dict = {}

    def memo(self, key, compute):
        """compute() once per key for this tree (parsed logs, checked traces): the checks
        share what one of them read."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def stored_as(self, rel: str) -> str:
        """Where a file's content is: `rel`, or `rel.gz` for a file a submission may store
        compressed (COMPRESSIBLE) when only the compressed one is there."""
        if rel.rsplit("/", 1)[-1] in COMPRESSIBLE and self._kind(rel) == "missing" \
                and self._kind(rel + ".gz") != "missing":
            return rel + ".gz"
        return rel

    def kind(self, rel: str) -> str:
        """'file', 'dir', 'missing', 'link' or 'special' (of the compressed copy, for a
        file stored compressed)."""
        return self._kind(self.stored_as(rel))

    def _kind(self, rel: str) -> str:
        try:
            st = os.lstat(self.root / rel)
        except OSError:
            return "missing"
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        if stat.S_ISREG(st.st_mode):
            return "file"
        return "special"

    def is_file(self, rel: str) -> bool:
        return self.kind(rel) == "file"

    def listdir(self, rel: str) -> list[str]:
        if self.kind(rel) != "dir":
            return []
        try:
            return sorted(os.listdir(self.root / rel))
        except OSError:
            return []

    def walk(self):
        """Every entry below the root as (relative path, kind), without following links."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath).relative_to(self.root)
            for name in sorted(dirnames) + sorted(filenames):
                rel = str(base / name) if str(base) != "." else name
                yield rel, self.kind(rel)

    def bytes(self, rel: str) -> tuple[bytes | None, str]:
        key = ("bytes", rel)
        if key in self._cache:
            return self._cache[key]
        k = self.kind(rel)
        if k != "file":
            out = (None, {"missing": "file is missing", "dir": "is a directory, not a file",
                          "link": "is a link (links are refused)",
                          "special": "is not a regular file"}[k])
        else:
            stored = self.stored_as(rel)
            try:
                size = os.lstat(self.root / stored).st_size
                if size > MAX_FILE_BYTES:
                    out = (None, f"file is {size} bytes, over the {MAX_FILE_BYTES} byte limit")
                else:
                    data = (self.root / stored).read_bytes()
                    out = (data, "") if stored == rel else _gunzip(data)
            except OSError as err:
                out = (None, f"cannot read: {err.strerror}")
        self._cache[key] = out
        return out

    def text(self, rel: str) -> tuple[str | None, str]:
        data, problem = self.bytes(rel)
        if data is None:
            return None, problem
        try:
            return data.decode("utf-8"), ""
        except UnicodeDecodeError as err:
            return None, f"not UTF-8 text (byte {err.start})"

    def _parsed(self, kind: str, rel: str, parse) -> tuple[object, str]:
        """Read a file's text once, parse it once with parse(text) -> (value, problem)."""
        key = (kind, rel)
        if key not in self._cache:
            text, problem = self.text(rel)
            self._cache[key] = (None, problem) if text is None else parse(text)
        return self._cache[key]

    def json(self, rel: str) -> tuple[object, str]:
        def parse(text):
            try:
                return strict_loads(text), ""
            except (ValueError, RecursionError) as err:
                return None, _why(err)
        return self._parsed("json", rel, parse)

    def json_lines(self, rel: str) -> tuple[list | None, str]:
        """[(line number, parsed object or None, problem)] for a JSON-lines file, parsed by
        the C parser for speed: NaN, Infinity and huge numbers come through as floats and ints
        (the trace check refuses any number outside its range) and a duplicate key is caught
        by `duplicate_keys` (compliance.checks.traces counts a record's keys in its text)."""
        def parse(text):
            rows = []
            for i, line in enumerate(_lines(text), 1):
                if not line.strip():
                    continue
                try:
                    rows.append((i, json.loads(line), ""))
                except (ValueError, RecursionError) as err:
                    rows.append((i, None, _why(err)))
            return rows, ""
        return self._parsed("jsonl", rel, parse)

    def mllog(self, rel: str) -> tuple[dict | None, str]:
        """LoadGen detail log: {key: (value, line number)} of each key's FIRST record, plus
        '__errors__' [(msg, line)], '__bad_lines__' [line] (garbage, disguised or unparsable
        lines), '__dups__' [(key, line)] (a key logged twice), '__times__' [time_ms] and
        '__time_problems__' [line] (a stamp missing, negative or going back in time). Each
        problem list holds its first MAX_LISTED; '__counts__' {list: how many in all}. Lines
        past MAX_LOG_LINES are not parsed: they count as malformed."""
        def parse(text):
            out: dict = {"__errors__": [], "__bad_lines__": [], "__dups__": [], "__times__": [],
                         "__time_problems__": []}
            counts = out["__counts__"] = dict.fromkeys(("__errors__", "__bad_lines__",
                                                        "__dups__", "__time_problems__"), 0)

            def note(kind, item):
                counts[kind] += 1
                if len(out[kind]) < MAX_LISTED:
                    out[kind].append(item)
            n_lines = text.count("\n") + 1
            if n_lines > MAX_LOG_LINES:  # parse the head only (never split the whole text)
                cut = -1
                for _ in range(MAX_LOG_LINES):
                    cut = text.find("\n", cut + 1)
                text = text[:cut]
                note("__bad_lines__", MAX_LOG_LINES + 1)
                counts["__bad_lines__"] += n_lines - MAX_LOG_LINES - 1
            last_t = 0.0
            for i, line in enumerate(_lines(text), 1):
                if not line.strip():
                    continue
                if not line.startswith(":::MLLOG {"):
                    note("__bad_lines__", i)
                    if "error" in line.lower():  # an error line behind a changed prefix
                        note("__errors__", (line[:200], i))
                    continue
                try:
                    rec = strict_loads(line[len(":::MLLOG "):])
                    k = rec["key"]
                except (ValueError, KeyError, TypeError, RecursionError):
                    note("__bad_lines__", i)
                    if "error" in line.lower():
                        note("__errors__", (line[:200], i))
                    continue
                if not isinstance(k, str) or not k or k.startswith("__"):
                    note("__bad_lines__", i)
                    continue
                t = rec.get("time_ms")
                if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0 or \
                        t + 1e-6 < last_t:
                    note("__time_problems__", i)
                else:
                    last_t = float(t)
                    out["__times__"].append(last_t)
                if k in out:
                    if k not in REPEATABLE_KEYS:
                        note("__dups__", (k, i))
                else:
                    out[k] = (rec.get("value"), i)
                meta = rec.get("metadata")
                if not isinstance(meta, dict) or not isinstance(meta.get("is_error"), bool):
                    note("__bad_lines__", i)  # LoadGen flags every record
                if k == "error" or (isinstance(meta, dict) and meta.get("is_error") is True):
                    note("__errors__", (str(rec.get("value"))[:200], i))
            return out, ""
        return self._parsed("mllog", rel, parse)
