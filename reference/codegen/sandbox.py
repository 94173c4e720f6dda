"""The nano-codegen verifier: syntax, safety, then sandboxed execution with limits.

    from reference.codegen.sandbox import Verifier
    with Verifier(workers=2) as v:
        r = v.verify("result = sum([1, 2, 3, 4, 5])", expected="15")
        r.kind, r.ok, r.feedback            # "ok", True, "Output: 15 (correct)"
        v.containment                       # what the OS layer enforces on this machine

Stages, each a typed outcome that becomes the agent's feedback text:
1. syntax   - `ast.parse`;
2. unsafe   - the AST layer (`check_safety`, below): a program may only use a small language;
3. execution in a forked child of a small worker process (`zygote.py`), contained by the OS
   layer before the program is compiled: its own session, no inherited descriptors, empty
   environment, rlimits (CPU time, address space, file size, descriptors), uid `nobody` with
   RLIMIT_NPROC 0 when run as root, and a default-deny seccomp allow-list
   (`seccomp_policy.py`: no exec, fork, socket, file open, xattr, IPC, and no signal to any
   other process by any route). That layer is built to hold even if this AST check were
   bypassed (the bypass tests run programs through `execute`, which skips it). The wall-clock
   limit is enforced by killing the child (the seed accepted `timeout_ms` and ignored it);
4. the child reports only what happened (the output, or the error) in a bounded frame; the
   verdict is decided here: `str(result)` compared with the expected output. A program that
   forges a report can only claim an output; a malformed report is a `sandbox_error`.
Outcomes: ok, syntax, unsafe, runtime, timeout, memory, output_too_large, wrong_output, and
sandbox_error (the OS layer could not be applied, or the program's process sent a malformed
report). Feedback text is always encodable (lone surrogates and the like are
backslash-escaped), printable (control characters and bidi overrides as visible escapes, so an
ANSI or OSC sequence in an output reaches no terminal) and one line.
A worker process that dies is replaced; the benchmark goes on.

The AST layer: every syntax form that can name an attribute, reach an object's internals or
bind a name was considered (Python 3.11 grammar):
- `Attribute` (`x.attr`, also as an assignment/del target and in `case a.b:` value patterns):
  the attribute must be on ALLOWED_ATTRIBUTES (methods of str/list/dict/set/tuple and numeric
  fields). No dunders, no frame/code/traceback fields (`gi_frame`, `f_globals`, `tb_frame`,
  `with_traceback`), no `format`/`format_map`, no exception `args`;
- `match` class patterns (`case str(format=f)`, `case Exception(obj=o)`): keyword patterns name
  attributes as plain strings, so class patterns are refused outright; mapping patterns only
  look up keys; capture names (`case x`, `case [*rest]`, `case {**rest}`) are checked as names;
- names, wherever bound or read: `Name` (incl. walrus targets, for/with/comprehension targets,
  `del`), function and lambda parameters (positional-only, `*args`, keyword-only, `**kw`),
  function names, call keyword names (`f(__x=1)`), `except ... as name`, capture patterns.
  A name may not start with an underscore (`_` alone is allowed) or be on FORBIDDEN_NAMES
  (getattr and friends, exec/eval/compile/open/format/type/...; none of them is a builtin in
  the child anyway);
- format strings: `str.format`/`format_map` are not allowed attributes and `format` is not a
  builtin, so no `{0.attr}` / `{0[key]}` field walks exist; `%` formatting only looks up
  mapping keys and calls str()/repr(); f-strings are expressions checked like any other,
  their format specs reach only builtin types' `__format__`;
- string and bytes constants containing `__` (the usual way to spell a dunder for a lookup);
- statements: `import`/`from`, `global`/`nonlocal`, `class` (no `__build_class__` in the child),
  `async def`/`await`/`async for`/`async with`; programs over 4,000 characters.
Still allowed: functions, lambdas, generators, comprehensions, try/except, with, match on
values/sequences/mappings, f-strings, subscripts, slicing.

Limits: Linux only (fork, rlimits, seccomp). Where seccomp is unavailable the child still runs
with the other OS layers and `containment` says so; a warning is printed once.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import re

from reference.codegen.seccomp_policy import compile_filter

MAX_PROGRAM_CHARS = 4000
FORBIDDEN_NAMES = {"exec", "eval", "open", "compile", "globals", "locals", "vars",
                   "getattr", "setattr", "delattr", "hasattr", "input", "breakpoint", "help",
                   "exit", "quit", "memoryview", "type", "object", "super", "classmethod",
                   "staticmethod", "property", "dir", "id", "hash", "iter", "next", "format",
                   "aiter", "anext", "callable", "issubclass", "repr", "ascii", "bytearray",
                   "bytes", "slice", "frozenset", "license", "credits", "copyright"}
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
REFUSED_STATEMENTS = {
    ast.Import: "imports are not allowed", ast.ImportFrom: "imports are not allowed",
    ast.Global: "global and nonlocal are not allowed",
    ast.Nonlocal: "global and nonlocal are not allowed",
    ast.ClassDef: "classes are not allowed", ast.AsyncFunctionDef: "async code is not allowed",
    ast.Await: "async code is not allowed", ast.AsyncFor: "async code is not allowed",
    ast.AsyncWith: "async code is not allowed",
    ast.MatchClass: "class patterns in match are not allowed",
}
DEFAULT_LIMITS = {"cpu_s": 1, "wall_s": 2.0, "memory_mb": 256, "max_output_chars": 1000}
_LABELS = {"syntax": "Syntax error", "unsafe": "Unsafe program", "runtime": "Runtime error",
           "timeout": "Timeout", "memory": "Memory limit exceeded",
           "output_too_large": "Output too large", "sandbox_error": "Sandbox error"}


# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text (the
# same set as loadgen_harness.untrusted.safe): an ANSI or OSC sequence in a program's output
# must not reach a terminal or a page as one.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
# What the zygote may answer: every outcome but the verifier's own verdicts (ok, wrong_output).
_WORKER_KINDS = {"ran", "runtime", "timeout", "memory", "output_too_large", "syntax",
                 "sandbox_error"}
_MAX_WORKER_LINE = 64 * 1024


def encodable(text: str) -> str:
    """Text that encodes to UTF-8 whatever it holds (lone surrogates become `\\udc80`)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(text: str) -> str:
    """`encodable`, and every control or text-reordering character as a visible escape
    (`\\x1b`, `\\u202e`): safe to print on a terminal or put in a page."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", encodable(text))


@dataclass(frozen=True)
class VerifyResult:
    # ok | syntax | unsafe | runtime | timeout | memory | output_too_large | wrong_output |
    # sandbox_error
    kind: str
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
            text = f"{_LABELS.get(self.kind, self.kind)}: {self.detail}"
        return printable(" ".join(text.splitlines()))


def _bad_name(name: str | None) -> str | None:
    """Why an identifier is refused, or None."""
    if name is None:
        return None
    if name.startswith("_") and name != "_":
        return f"name {name!r} is not allowed (names may not start with an underscore)"
    if name in FORBIDDEN_NAMES:
        return f"name {name!r} is not allowed"
    return None


def _node_names(node: ast.AST) -> list[str | None]:
    """Every identifier a node binds or reads, other than attribute names."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword):
        return [node.arg]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.ExceptHandler):
        return [node.name]
    if isinstance(node, (ast.MatchAs, ast.MatchStar)):
        return [node.name]
    if isinstance(node, ast.MatchMapping):
        return [node.rest]
    if isinstance(node, ast.alias):
        return [node.name, node.asname]
    return []


def check_safety(code: str) -> VerifyResult | None:
    """A refusal (syntax or unsafe) or None when the program may run (see the module docstring
    for every form considered)."""
    if len(code) > MAX_PROGRAM_CHARS:
        return VerifyResult("unsafe", f"program longer than {MAX_PROGRAM_CHARS} characters")
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        return VerifyResult("syntax", printable(f"{err.msg} (line {err.lineno})"))
    except (ValueError, RecursionError, MemoryError) as err:
        return VerifyResult("syntax", f"cannot parse: {type(err).__name__}")
    for node in ast.walk(tree):
        refusal = REFUSED_STATEMENTS.get(type(node))
        if refusal:
            return VerifyResult("unsafe", refusal)
        if isinstance(node, ast.Attribute) and node.attr not in ALLOWED_ATTRIBUTES:
            return VerifyResult("unsafe", f"access to attribute {node.attr!r} is not allowed")
        for name in _node_names(node):
            why = _bad_name(name)
            if why:
                return VerifyResult("unsafe", why)
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            if ("__" if isinstance(node.value, str) else b"__") in node.value:
                return VerifyResult("unsafe", "strings containing '__' are not allowed")
    return None


@cache
def _seccomp_setup() -> str:
    """The zygote's set-up line: the compiled seccomp filter (hex) and its state."""
    bpf, state = compile_filter()
    return json.dumps({"bpf": bpf.hex() if bpf else None, "state": state})


def _worker_report(line: str) -> dict:
    """The zygote's answer, checked: a flat dict of a known kind with string fields. The zygote
    never runs a program itself (its children do), but its answer is still checked rather than
    trusted; raises ValueError on anything else (the caller replaces the worker)."""
    out = json.loads(line)
    if not isinstance(out, dict) or out.get("kind") not in _WORKER_KINDS:
        raise ValueError("sandbox worker's answer has no known kind")
    field = "output" if out["kind"] == "ran" else "detail"
    if not isinstance(out.get(field), str) or not isinstance(out.get("ms", 0.0), (int, float)):
        raise ValueError(f"sandbox worker's answer has no {field}")
    return {"kind": out["kind"], field: out[field], "ms": float(out.get("ms", 0.0))}


class _Worker:
    """One zygote process and its pipes. Started with an empty environment: nothing of the
    owner's environment is in its memory for a program to find."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference.codegen.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            cwd=Path(__file__).resolve().parents[2], env={}, close_fds=True)
        self.proc.stdin.write(_seccomp_setup() + "\n")
        self.proc.stdin.flush()
        hello = self.proc.stdout.readline()
        try:
            self.containment = json.loads(hello)["containment"]
        except (ValueError, KeyError, TypeError):
            self.close()
            raise RuntimeError("the sandbox worker did not start (no containment report)") from None

    def run(self, code: str, limits: dict) -> dict:
        self.proc.stdin.write(json.dumps({"code": code, "limits": limits}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline(_MAX_WORKER_LINE)
        if not line:
            raise BrokenPipeError("sandbox worker died")
        if not line.endswith("\n"):
            raise ValueError("sandbox worker's answer is too long")
        return _worker_report(line)

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


_warned = False


def _warn_if_partial(containment: dict) -> None:
    global _warned
    if _warned:
        return
    missing = []
    if not str(containment.get("seccomp", "")).startswith("on"):
        missing.append(f"seccomp {containment.get('seccomp')}")
    if containment.get("error"):
        missing.append(f"containment error: {containment['error']}")
    if missing:
        _warned = True
        print("warning: the code sandbox runs without part of its OS layer ("
              + "; ".join(missing) + "); programs are still AST-checked and rlimited",
              file=sys.stderr)


class Verifier:
    """A pool of sandbox workers; thread-safe; a dead worker is replaced."""

    def __init__(self, workers: int = 2, limits: dict | None = None):
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._idle = [_Worker() for _ in range(workers)]
        self.containment: dict = self._idle[0].containment if self._idle else {}
        _warn_if_partial(self.containment)
        self._cv = threading.Condition()
        self.replaced = 0
        self._n_workers = workers
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._cv:
            for w in self._idle:
                w.close()
            self._idle = []

    def submit(self, code: str, expected: str) -> Future:
        """`verify` on a thread of this verifier (one per worker process): a Future of
        (VerifyResult, wall ms), for callers that do other work meanwhile."""
        with self._cv:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=max(1, self._n_workers),
                                                    thread_name_prefix="verifier")
        return self._executor.submit(self._timed_verify, code, expected)

    def _timed_verify(self, code: str, expected: str) -> tuple[VerifyResult, float]:
        t0 = time.perf_counter()
        verdict = self.verify(code, expected)
        return verdict, (time.perf_counter() - t0) * 1e3

    def execute(self, code: str) -> dict:
        """Run a program in the OS layer alone, without the AST check: the raw zygote report.
        `verify` is the entry point for agent programs; this one runs the task generator's own
        oracle programs, and is the hook that lets tests prove the OS layer holds by itself."""
        with self._cv:
            while not self._idle:
                self._cv.wait()
            w = self._idle.pop()
        try:
            out = w.run(code, self.limits)
        except (BrokenPipeError, OSError, ValueError, RecursionError):
            w.close()
            w = _Worker()
            self.replaced += 1
            out = {"kind": "runtime", "detail": "the sandbox worker died; it was replaced",
                   "ms": 0.0}
        finally:
            with self._cv:
                self._idle.append(w)
                self._cv.notify()
        return out

    def verify(self, code: str, expected: str) -> VerifyResult:
        refusal = check_safety(code)
        if refusal is not None:
            return refusal
        out = self.execute(code)  # a checked report: never ok or wrong_output, always typed
        ms = out["ms"]
        if out["kind"] != "ran":
            return VerifyResult(out["kind"], encodable(out["detail"][:300]), ms=ms)
        # The verdict is decided here, in the verifier's process, from the output alone.
        if out["output"] == expected:
            return VerifyResult("ok", output=out["output"], ms=ms)
        return VerifyResult("wrong_output", output=encodable(out["output"][:200]), ms=ms)


def containment() -> dict:
    """What the OS layer enforces on this machine (one worker's start-up probe)."""
    with Verifier(workers=1) as v:
        return v.containment
