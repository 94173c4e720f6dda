"""The nano-codegen verifier: syntax, safety, then sandboxed execution with limits.

    from reference.codegen.sandbox import Verifier
    with Verifier(workers=2) as v:
        r = v.verify("result = sum([1, 2, 3, 4, 5])", expected="15")
        r.kind, r.ok, r.feedback            # "ok", True, "Output: 15 (correct)"

Stages, each a typed outcome that becomes the agent's feedback text:
1. syntax   - `ast.parse`;
2. unsafe   - an AST walk refuses imports, exec/eval/open/__import__/compile and friends,
              every dunder name, every attribute outside a list of str/list/dict/set
              methods (dunders, frames and str.format are how restricted-builtins
              sandboxes are escaped), `global`/`nonlocal`, and programs over 4,000 characters;
3. execution in a forked child of a small worker process (`zygote.py`) with CPU-time,
   address-space, file-size and open-file limits and only whitelisted builtins; the wall-clock
   limit is enforced by killing the child (the seed accepted `timeout_ms` and ignored it);
4. the program's `result`: `str(result)` compared with the expected output.
Outcomes: ok, syntax, unsafe, runtime, timeout, memory, output_too_large, wrong_output.
A worker process that dies is replaced; the benchmark goes on.

Limits: Linux only (fork, rlimits). RLIMIT_NPROC does not bind root, so forking is prevented
by the safety stage (no imports, no dunder access means no `os`), not by the kernel.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

MAX_PROGRAM_CHARS = 4000
FORBIDDEN_NAMES = {"exec", "eval", "open", "__import__", "compile", "globals", "locals", "vars",
                   "getattr", "setattr", "delattr", "input", "breakpoint", "help", "exit",
                   "quit", "memoryview", "type", "object", "super", "classmethod",
                   "staticmethod", "property", "dir", "id", "hash", "iter", "next"}
# Attributes a program may use: methods of str, list, dict, set and tuple. Everything else is
# refused, because attribute chains are how sandboxes are escaped: dunders, and also frame
# and code introspection without underscores (gen.gi_frame.f_back.f_globals reaches the
# worker's module globals) and str.format's field access ("{0.x}".format).
ALLOWED_ATTRIBUTES = {
    "append", "extend", "insert", "pop", "remove", "clear", "copy", "count", "index", "reverse",
    "sort", "keys", "values", "items", "get", "setdefault", "update", "add", "discard",
    "union", "intersection", "difference", "symmetric_difference", "issubset", "issuperset",
    "join", "split", "rsplit", "splitlines", "strip", "lstrip", "rstrip", "upper", "lower",
    "title", "capitalize", "swapcase", "casefold", "replace", "startswith", "endswith", "find",
    "rfind", "rindex", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
    "zfill", "center", "ljust", "rjust", "partition", "rpartition", "real", "imag",
    "is_integer", "bit_length", "conjugate", "numerator", "denominator",
}
DEFAULT_LIMITS = {"cpu_s": 1, "wall_s": 2.0, "memory_mb": 256, "max_output_chars": 1000}


@dataclass(frozen=True)
class VerifyResult:
    kind: str           # ok | syntax | unsafe | runtime | timeout | memory | output_too_large | wrong_output
    detail: str = ""    # what went wrong, for the feedback
    output: str | None = None
    ms: float = 0.0     # execution time in the sandbox (0 when refused before running)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def feedback(self) -> str:
        """The text appended to the agent's context after a failed attempt (one line)."""
        if self.kind == "ok":
            text = f"Output: {self.output} (correct)"
        elif self.kind == "wrong_output":
            text = f"Wrong output: {self.output}"
        else:
            label = {"syntax": "Syntax error", "unsafe": "Unsafe program",
                     "runtime": "Runtime error", "timeout": "Timeout",
                     "memory": "Memory limit exceeded", "output_too_large": "Output too large"}
            text = f"{label[self.kind]}: {self.detail}"
        return " ".join(text.splitlines())


def check_safety(code: str) -> VerifyResult | None:
    """A refusal (syntax or unsafe) or None when the program may run."""
    if len(code) > MAX_PROGRAM_CHARS:
        return VerifyResult("unsafe", f"program longer than {MAX_PROGRAM_CHARS} characters")
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        return VerifyResult("syntax", f"{err.msg} (line {err.lineno})")
    except (ValueError, RecursionError, MemoryError) as err:
        return VerifyResult("syntax", f"cannot parse: {type(err).__name__}")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return VerifyResult("unsafe", "imports are not allowed")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return VerifyResult("unsafe", "global and nonlocal are not allowed")
        if isinstance(node, ast.Attribute) and node.attr not in ALLOWED_ATTRIBUTES:
            return VerifyResult("unsafe", f"access to attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Name) and (node.id in FORBIDDEN_NAMES or node.id.startswith("__")):
            return VerifyResult("unsafe", f"name {node.id!r} is not allowed")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
            return VerifyResult("unsafe", "strings containing '__' are not allowed")
    return None


class _Worker:
    """One zygote process and its pipes."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference.codegen.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            cwd=Path(__file__).resolve().parents[2], env={"PATH": "/usr/bin:/bin"})

    def run(self, code: str, limits: dict) -> dict:
        self.proc.stdin.write(json.dumps({"code": code, "limits": limits}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BrokenPipeError("sandbox worker died")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Verifier:
    """A pool of sandbox workers; thread-safe; a dead worker is replaced."""

    def __init__(self, workers: int = 2, limits: dict | None = None):
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._idle = [_Worker() for _ in range(workers)]
        self._cv = threading.Condition()
        self.replaced = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        with self._cv:
            for w in self._idle:
                w.close()
            self._idle = []

    def execute(self, code: str) -> dict:
        with self._cv:
            while not self._idle:
                self._cv.wait()
            w = self._idle.pop()
        try:
            out = w.run(code, self.limits)
        except (BrokenPipeError, OSError, ValueError):
            w.close()
            w = _Worker()
            self.replaced += 1
            out = {"kind": "runtime", "detail": "the sandbox worker died; it was replaced", "ms": 0.0}
        finally:
            with self._cv:
                self._idle.append(w)
                self._cv.notify()
        return out

    def verify(self, code: str, expected: str) -> VerifyResult:
        refusal = check_safety(code)
        if refusal is not None:
            return refusal
        out = self.execute(code)
        ms = float(out.get("ms", 0.0))
        if out["kind"] != "ran":
            return VerifyResult(out["kind"], str(out.get("detail", ""))[:300], ms=ms)
        if out["output"] == expected:
            return VerifyResult("ok", output=out["output"], ms=ms)
        return VerifyResult("wrong_output", output=out["output"][:200], ms=ms)
