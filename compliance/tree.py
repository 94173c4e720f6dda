"""A read-only, never-raising view of an untrusted submission directory.

Every read is bounded (file size), refuses links and special files, and returns
(value, problem) instead of raising: a malformed file is a finding, never a crash. Parsed
files are cached so each is read once however many rules look at it.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 64 * 2**20  # no legitimate file of a submission comes near this


class Tree:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._cache: dict = {}

    def kind(self, rel: str) -> str:
        """'file', 'dir', 'missing', 'link' or 'special'."""
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
            try:
                size = os.lstat(self.root / rel).st_size
                if size > MAX_FILE_BYTES:
                    out = (None, f"file is {size} bytes, over the {MAX_FILE_BYTES} byte limit")
                else:
                    out = ((self.root / rel).read_bytes(), "")
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
                return json.loads(text), ""
            except (json.JSONDecodeError, RecursionError) as err:
                where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
                return None, f"not valid JSON{where}: {getattr(err, 'msg', err)}"
        return self._parsed("json", rel, parse)

    def json_lines(self, rel: str) -> tuple[list | None, str]:
        """[(line number, parsed object or None, problem)] for a JSON-lines file."""
        def parse(text):
            rows = []
            for i, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append((i, json.loads(line), ""))
                except (json.JSONDecodeError, RecursionError) as err:
                    rows.append((i, None, f"not valid JSON: {getattr(err, 'msg', err)}"))
            return rows, ""
        return self._parsed("jsonl", rel, parse)

    def mllog(self, rel: str) -> tuple[dict | None, str]:
        """LoadGen detail log: {key: (value, line number)}, plus '__errors__' [(msg, line)]."""
        def parse(text):
            out: dict = {"__errors__": [], "__bad_lines__": []}
            for i, line in enumerate(text.splitlines(), 1):
                if not line.startswith(":::MLLOG "):
                    continue
                try:
                    rec = json.loads(line[len(":::MLLOG "):])
                    k = rec["key"]
                except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
                    out["__bad_lines__"].append(i)
                    continue
                if not isinstance(k, str):
                    out["__bad_lines__"].append(i)
                    continue
                out[k] = (rec.get("value"), i)
                meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
                if k == "error" or meta.get("is_error"):
                    out["__errors__"].append((str(rec.get("value"))[:200], i))
            return out, ""
        return self._parsed("mllog", rel, parse)
