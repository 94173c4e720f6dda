"""Sandbox worker process: forks one short-lived child per program (started by sandbox.py).

    python -m reference.codegen.zygote      # speaks JSON lines on stdin/stdout

This process imports nothing heavy, so forking it is cheap and safe (the model's process,
with its threads, never forks). Each child applies CPU-time, address-space, file-size and
open-file limits, drops to an empty environment, and runs the program with the whitelisted
builtins only; the zygote enforces the wall-clock limit and kills the child when it passes.
The child reports `str(result)` (bounded) through a pipe; nothing else leaves it.
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import sys
import time

MAX_REPORT_BYTES = 64 * 1024

SAFE_BUILTINS = ("abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter",
                 "float", "int", "isinstance", "len", "list", "map", "max", "min", "ord", "pow",
                 "range", "reversed", "round", "set", "sorted", "str", "sum", "tuple", "zip",
                 "True", "False", "None", "ValueError", "TypeError", "IndexError", "KeyError",
                 "ZeroDivisionError", "Exception")


def _builtins() -> dict:
    import builtins
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    safe["print"] = lambda *a, **k: None  # output is `result`, never stdout
    return safe


def _child(code: str, limits: dict, wfd: int) -> None:
    """Runs in the forked child: limits first, then the program. Never returns."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the zygote's protocol pipes are not the program's business
            os.dup2(devnull, fd)
        cpu = max(1, int(limits["cpu_s"]))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        mem = int(limits["memory_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no-op for root; see sandbox.py
        except (ValueError, OSError):
            pass
        sys.setrecursionlimit(200)
        env = {"__builtins__": _builtins()}
        exec(compile(code, "<program>", "exec"), env)  # noqa: S102: the sandbox's purpose
        if "result" not in env:
            report = {"kind": "runtime", "detail": "the program did not assign `result`"}
        else:
            text = str(env["result"])
            if len(text) > int(limits["max_output_chars"]):
                report = {"kind": "output_too_large",
                          "detail": f"str(result) has {len(text)} characters"}
            else:
                report = {"kind": "ran", "output": text}
    except MemoryError:
        report = {"kind": "memory", "detail": "memory limit exceeded"}
    except RecursionError:
        report = {"kind": "runtime", "detail": "RecursionError: maximum recursion depth exceeded"}
    except BaseException as err:  # the program's own error, reported as feedback
        report = {"kind": "runtime", "detail": f"{type(err).__name__}: {str(err)[:200]}"}
    try:
        data = json.dumps(report).encode()[:MAX_REPORT_BYTES]
        os.write(wfd, data)
    finally:
        os._exit(0)


def run_one(code: str, limits: dict) -> dict:
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(code, limits, wfd)
    os.close(wfd)
    deadline = t0 + float(limits["wall_s"])
    chunks, killed = [], None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "timeout"
                break
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_REPORT_BYTES:
                killed = "output_too_large"
                break
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        os.close(rfd)
    ms = (time.monotonic() - t0) * 1e3
    if killed == "timeout":
        return {"kind": "timeout", "detail": f"killed after {limits['wall_s']} s", "ms": ms}
    if killed:
        return {"kind": killed, "detail": "report too large", "ms": ms}
    try:
        report = json.loads(b"".join(chunks).decode())
    except (ValueError, UnicodeDecodeError):
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            report = {"kind": "timeout", "detail": "CPU-time limit exceeded"}
        elif sig is not None:
            report = {"kind": "runtime", "detail": f"killed by {signal.Signals(sig).name}"}
        else:
            report = {"kind": "memory", "detail": "the program died without a report"}
    report["ms"] = ms
    return report


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    for line in sys.stdin:
        req = json.loads(line)
        out = run_one(req["code"], req["limits"])
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
