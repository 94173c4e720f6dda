"""Sandbox worker process: forks one short-lived, contained child per program (started by
sandbox.py).

    python -m reference.codegen.zygote      # speaks JSON lines on stdin/stdout

This process imports nothing heavy and holds nothing worth stealing (it is started with an empty
environment and only ever sees programs and limits), so forking it is cheap and safe; the
model's process, with its threads and its environment, never forks.

The OS layer, applied in each child before the program is even compiled, is meant to hold
even if the AST check in sandbox.py were bypassed (a program that reaches `os` through some
unforeseen walk):
1. its own session (so the zygote can kill the whole group), stdin/stdout/stderr on /dev/null,
   every inherited descriptor closed but the report pipe (fd 3), an empty environment, cwd `/`;
2. rlimits: CPU time, address space, file size 0, 16 descriptors, no core dumps;
3. when the zygote runs as root: all groups dropped and the uid/gid set to `nobody`, with
   RLIMIT_NPROC 0, so the kernel refuses to create a process and every file of the owner is
   out of reach (`/proc/<pid>/environ` of the verifier's owner included). Not root: the uid
   stays, every capability is dropped, and layer 4 carries the load;
4. a seccomp allow-list (seccomp_policy.py: compiled once by the verifier's process with
   libseccomp and handed to the zygote as raw BPF, installed in each child with
   `no_new_privs`). Default deny: no exec, fork, socket, file open, xattr, IPC, and no signal
   to any other process by any route (kill, tgkill, pidfd, fcntl ownership with O_ASYNC,
   ioctl, process groups). Other architectures' entry points kill the child.
   Where libseccomp or pyseccomp is missing, or the kernel refuses the filter, the child runs
   with layers 1-3 only; `containment()` says so (the zygote probes the layers at start with
   a real child and reports what held) and sandbox.Verifier prints a warning once.
Then the child compiles and runs the program and reports what happened over a bounded frame
(see "The report channel" below): the program's output or its error, never a verdict; the
verifier's process compares the output with the expected one. Anything malformed on that
channel is a `sandbox_error`. The wall-clock limit is enforced by killing the child's process
group.
"""
from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import resource
import select
import signal
import sys
import time
import unicodedata  # noqa: F401  preloaded, a contained child cannot load it (`\N{...}`)

NOBODY = 65534

SAFE_BUILTINS = ("abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter",
                 "float", "int", "isinstance", "len", "list", "map", "max", "min", "ord", "pow",
                 "range", "reversed", "round", "set", "sorted", "str", "sum", "tuple", "zip",
                 "True", "False", "None", "ValueError", "TypeError", "IndexError", "KeyError",
                 "ZeroDivisionError", "Exception")

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_LIBC = ctypes.CDLL(None, use_errno=True)
_BPF: bytes = b""              # set by main() from the set-up line
_BPF_STATE = "not configured"
_BPF_BUF = None


def _install_filter() -> None:
    """Install the compiled filter in this (child) process; raises OSError on refusal."""
    if _BPF_BUF is None:
        return
    prog = _SockFprog(len(_BPF) // 8, ctypes.cast(_BPF_BUF, ctypes.c_void_p))
    for args in ((_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                 (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0)):
        if _LIBC.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"prctl: {os.strerror(e)}")


def _drop_capabilities() -> None:
    """Empty effective, permitted and inheritable sets (and so the ambient set)."""
    data = (ctypes.c_uint32 * 6)()
    if _LIBC.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")


def _builtins() -> dict:
    import builtins
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    safe["print"] = lambda *a, **k: None  # output is `result`, never stdout
    return safe


_SAFE_BUILTINS = _builtins()  # built once; each child gets its own copy of the zygote's memory


def _contain(limits: dict, wfd: int) -> int:
    """Apply layers 1-4 to this child; returns the result pipe's new descriptor."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the zygote's protocol pipes are not the program's business
        os.dup2(devnull, fd)
    os.dup2(wfd, 3)
    os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # one close_range call
    os.environ.clear()
    os.chdir("/")
    cpu = max(1, int(limits["cpu_s"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getuid() == 0:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)  # drops every capability too
    else:
        _drop_capabilities()  # an ordinary owner may still hold some (ambient, file caps)
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # binds every uid but root
    except (ValueError, OSError):
        pass
    mem = int(limits["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    _install_filter()
    return 3


def _describe(err: BaseException) -> str:
    """`Type: message` of the program's exception, whatever its message does when printed."""
    try:
        name = type(err).__name__
    except BaseException:  # noqa: BLE001  hostile objects may raise anything
        name = "Exception"
    try:
        text = str(err)[:200]
    except BaseException:  # noqa: BLE001
        text = "(message could not be printed)"
    return f"{name}: {text}"[:MAX_DETAIL_CHARS]


# ---------------------------------------------------------------------------------------------
# The report channel, child -> zygote. The child reports what happened, never a verdict: a
# frame is MAGIC, one kind byte, a 4-byte big-endian length and that many bytes of UTF-8
# (surrogates passed through), nothing after it. A flat frame has no nesting for a parser to
# recurse into (its depth is 1 by construction) and its size is bounded by the limits the
# zygote itself set. Whatever else arrives (bytes that are not one such frame, a kind the
# child never sends, an output longer than the child may send) is a `sandbox_error`: a program
# that writes its own frame to fd 3 can only claim an output, which the verifier's process
# then compares with the expected one.

MAGIC = b"NRP1"
REPORT_KINDS = {1: "ran", 2: "runtime", 3: "memory", 4: "output_too_large", 5: "syntax",
                6: "sandbox_error"}
_KIND_CODES = {kind: code for code, kind in REPORT_KINDS.items()}
MAX_DETAIL_CHARS = 300  # the child cuts every detail to this; the zygote refuses more


def encode_report(kind: str, text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return MAGIC + bytes((_KIND_CODES[kind],)) + len(data).to_bytes(4, "big") + data


def max_report_bytes(limits: dict) -> int:
    """The largest frame an honest child sends under these limits (4 bytes a character)."""
    return 9 + 4 * max(int(limits["max_output_chars"]), MAX_DETAIL_CHARS)


def decode_report(data: bytes, limits: dict) -> dict:
    """The child's frame as {"kind", "output" or "detail"}; any malformed frame is a
    `sandbox_error` outcome (never an exception)."""
    def bad(why: str) -> dict:
        return {"kind": "sandbox_error",
                "detail": f"malformed report from the program's process ({why})"}
    if len(data) > max_report_bytes(limits):
        return bad(f"{len(data)} bytes, more than {max_report_bytes(limits)}")
    if len(data) < 9 or data[:4] != MAGIC:
        return bad("no report header")
    kind = REPORT_KINDS.get(data[4])
    if kind is None:
        return bad(f"unknown kind {data[4]}")
    n = int.from_bytes(data[5:9], "big")
    if n != len(data) - 9:
        return bad(f"length {n} but {len(data) - 9} bytes follow")
    try:
        text = data[9:].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return bad("not UTF-8")
    if kind == "ran":
        if len(text) > int(limits["max_output_chars"]):
            return bad(f"an output of {len(text)} characters")
        return {"kind": "ran", "output": text}
    if len(text) > MAX_DETAIL_CHARS:
        return bad(f"a detail of {len(text)} characters")
    return {"kind": kind, "detail": text}


def _run(program, limits: dict) -> tuple[str, str]:
    """Execute the compiled program in a contained child: (kind, output or detail)."""
    sys.setrecursionlimit(200)
    env = {"__builtins__": _SAFE_BUILTINS}
    try:
        exec(program, env)  # noqa: S102  the sandbox's purpose
        if "result" not in env:
            return "runtime", "the program did not assign `result`"
        text = str(env["result"])
        if len(text) > int(limits["max_output_chars"]):
            return "output_too_large", f"str(result) has {len(text)} characters"
        return "ran", text
    except MemoryError:
        return "memory", "memory limit exceeded"
    except RecursionError:
        return "runtime", "RecursionError: maximum recursion depth exceeded"
    except BaseException as err:  # noqa: BLE001  the program's own error, reported as feedback
        return "runtime", _describe(err)


def _child(code: str, limits: dict, wfd: int) -> None:
    """Runs in the forked child: contain, compile, run, report. Never returns, whatever the
    program raises or however its exception misbehaves when printed. Containment comes first:
    the compiler itself can be attacked (try/finally nested 24 deep made it allocate 1.1 GB),
    so it runs under the memory, CPU and seccomp limits like the program."""
    try:
        kind, text = "runtime", "the program's outcome could not be reported"
        try:
            wfd = _contain(limits, wfd)
        except BaseException as err:  # noqa: BLE001
            kind, text = "sandbox_error", f"containment failed: {_describe(err)}"
        else:
            try:
                program = compile(code, "<program>", "exec")
            except MemoryError:
                kind, text = "memory", "memory limit exceeded"
            except BaseException as err:  # noqa: BLE001  sandbox.py parses first; belt and braces
                kind, text = "syntax", _describe(err)
            else:
                try:
                    kind, text = _run(program, limits)
                except BaseException:  # noqa: BLE001  e.g. MemoryError inside a handler
                    pass
        try:
            data = encode_report(kind, text)
        except BaseException:  # noqa: BLE001  e.g. a str subclass whose encode misbehaves
            data = encode_report("runtime", "the program's outcome could not be encoded")
        os.write(wfd, data)
    finally:
        os._exit(0)


def run_one(code: str, limits: dict) -> dict:
    """Fork a contained child for one program and decide its outcome from its frame and its
    exit status: {"kind": ran|runtime|timeout|memory|output_too_large|syntax|sandbox_error,
    "output" or "detail", "ms"}."""
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            _child(code, limits, wfd)
        finally:
            os._exit(0)  # never back into the zygote's loop
    os.close(wfd)
    deadline = t0 + float(limits["wall_s"])
    cap = max_report_bytes(limits)
    chunks, size, killed = [], 0, None
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
            size += len(chunk)
            if size > cap:
                break  # decode_report refuses it; no need to read the rest
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
    if chunks:
        report = decode_report(b"".join(chunks), limits)
    else:  # no report at all: the exit status says what happened
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            report = {"kind": "timeout", "detail": "CPU-time limit exceeded"}
        elif sig is not None:
            report = {"kind": "runtime", "detail": f"killed by {signal.Signals(sig).name}"}
        else:
            report = {"kind": "memory", "detail": "the program died without a report"}
    report["ms"] = ms
    return report


# The probe runs in a contained child: the same layers as a program, then tries what they forbid.
_PROBE = {"cpu_s": 1, "wall_s": 2.0, "memory_mb": 256, "max_output_chars": 4000}


def _probe_child(wfd: int) -> None:
    try:
        facts = {"seccomp": _BPF_STATE, "uid": None, "fork": "allowed", "open": "allowed",
                 "signal_parent": "allowed"}
        try:
            fd = _contain(_PROBE, wfd)
        except BaseException as err:  # noqa: BLE001
            os.write(wfd, json.dumps({"error": _describe(err), **facts}).encode())
            return
        if _BPF_BUF is not None:
            facts["seccomp"] = f"on ({_BPF_STATE})"
        facts["uid"] = os.getuid()
        try:
            os.kill(os.getppid(), 0)  # signal 0: only the permission check
        except OSError as err:
            facts["signal_parent"] = f"refused ({errno.errorcode.get(err.errno, err.errno)})"
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        except OSError as err:
            facts["fork"] = f"refused ({errno.errorcode.get(err.errno, err.errno)})"
        try:
            os.close(os.open("/proc/self/status", os.O_RDONLY))
        except OSError as err:
            facts["open"] = f"refused ({errno.errorcode.get(err.errno, err.errno)})"
        os.write(fd, json.dumps(facts).encode())
    finally:
        os._exit(0)


def probe() -> dict:
    """What the OS layer enforces on this machine, measured in a real contained child."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            _probe_child(wfd)
        finally:
            os._exit(0)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks).decode())
    except ValueError:
        return {"error": "the probe child died", "seccomp": _BPF_STATE}


def main() -> None:
    global _BPF, _BPF_STATE, _BPF_BUF
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    setup = json.loads(sys.stdin.readline() or "{}")  # {"bpf": hex or null, "state": text}
    if setup.get("bpf"):
        _BPF = bytes.fromhex(setup["bpf"])
        _BPF_BUF = ctypes.create_string_buffer(_BPF, len(_BPF))
    _BPF_STATE = str(setup.get("state", "not configured"))
    gc.freeze()  # fewer copy-on-write pages in each child
    sys.stdout.write(json.dumps({"containment": probe()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        req = json.loads(line)
        out = run_one(req["code"], req["limits"])
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
