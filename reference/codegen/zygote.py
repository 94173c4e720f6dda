"""Sandbox worker process: forks one short-lived, contained child per program (started by
sandbox.py).

    python -m reference.codegen.zygote      # speaks JSON lines on stdin/stdout

This process imports nothing heavy and holds nothing worth stealing (it is started with an empty
environment and only ever sees programs and limits), so forking it is cheap and safe; the
model's process, with its threads and its environment, never forks.

The OS layer, applied in each child before the program runs, is meant to hold even if the AST
check in sandbox.py were bypassed (a program that reaches `os` through some unforeseen walk):
1. its own session (so the zygote can kill the whole group), stdin/stdout/stderr on /dev/null,
   every inherited descriptor closed but the result pipe, an empty environment, cwd `/`;
2. rlimits: CPU time, address space, file size 0, 16 descriptors, no core dumps;
3. when the zygote runs as root: all groups dropped and the uid/gid set to `nobody`, with
   RLIMIT_NPROC 0, so the kernel refuses to create a process and every file of the owner is
   out of reach (`/proc/<pid>/environ` of the verifier's owner included). Not root: the uid
   stays, and layer 4 carries the load;
4. a seccomp filter (libseccomp through `pyseccomp`, compiled once by the verifier's process
   and handed to the zygote as raw BPF, installed in each child with `no_new_privs`) that answers EPERM to execve, fork/vfork/clone/clone3,
   sockets, kill/ptrace/process_vm_* and the other process- and file-changing calls listed in
   DENIED_SYSCALLS, and EACCES to every way of opening a file (open, openat, openat2, creat,
   open_by_handle_at). Other architectures' syscall entry points (int 0x80 on x86_64) kill
   the child (libseccomp's bad-arch action).
   Where libseccomp or pyseccomp is missing, or the kernel refuses the filter, the child runs
   with layers 1-3 only; `containment()` says so (the zygote probes the layers at start with
   a real child and reports what held) and sandbox.Verifier prints a warning once.
Each child reports a typed outcome whatever its program raises; the wall-clock limit is
enforced by killing the child's process group.
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

MAX_REPORT_BYTES = 64 * 1024
NOBODY = 65534

SAFE_BUILTINS = ("abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter",
                 "float", "int", "isinstance", "len", "list", "map", "max", "min", "ord", "pow",
                 "range", "reversed", "round", "set", "sorted", "str", "sum", "tuple", "zip",
                 "True", "False", "None", "ValueError", "TypeError", "IndexError", "KeyError",
                 "ZeroDivisionError", "Exception")

# Answered EPERM in the child. A denylist, not an allowlist: CPython's own needs differ across
# glibc versions and an allowlist that misses one breaks ordinary programs in odd ways; what a
# contained program must never do is short and stable. Names unknown to this kernel/arch are
# skipped.
DENIED_SYSCALLS = (
    # new programs and processes
    "execve", "execveat", "fork", "vfork", "clone", "clone3",
    # network and local sockets
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # other processes: signals, tracing, memory, descriptors
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
    "pidfd_getfd", "pidfd_send_signal", "ptrace", "process_vm_readv", "process_vm_writev",
    "process_madvise", "kcmp", "setpriority", "sched_setaffinity", "sched_setscheduler",
    "sched_setparam", "sched_setattr", "ioprio_set", "migrate_pages", "move_pages", "prlimit64",
    "setrlimit",
    # identity, sessions, namespaces
    "setsid", "setpgid", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setfsuid", "setfsgid", "setgroups", "capset", "unshare", "setns", "personality",
    # the file system
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
    "lchown", "fchownat", "truncate", "mknod", "mknodat", "utime", "utimes", "utimensat",
    "futimesat", "chdir", "fchdir", "chroot", "pivot_root", "mount", "umount2", "move_mount",
    "fsopen", "fsmount", "open_tree", "name_to_handle_at", "inotify_init", "inotify_init1",
    "fanotify_init", "memfd_create", "memfd_secret", "mq_open", "shmget", "shmat", "msgget",
    "semget",
    # the kernel and the machine
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "syslog", "reboot", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "acct", "swapon",
    "swapoff", "quotactl", "sethostname", "setdomainname", "iopl", "ioperm", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "lookup_dcookie", "vhangup", "seccomp",
)
DENIED_OPENS = ("open", "openat", "openat2", "creat", "open_by_handle_at")

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def compile_filter() -> tuple[bytes | None, str]:
    """The seccomp program as raw BPF, or None and the reason. Called in the verifier's own
    process (sandbox.py), once: importing pyseccomp here would make every fork of the zygote
    slower (measured: fork+exit 0.9 ms against 0.5 ms), so the zygote only installs bytes."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, RuntimeError) as err:
        return None, f"unavailable ({type(err).__name__}: {err})"
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        # A binary tree instead of a chain of comparisons: the kernel emulates the filter for
        # every syscall number when it is installed (its action cache), once per child.
        f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        for names, action in ((DENIED_SYSCALLS, sc.ERRNO(errno.EPERM)),
                              (DENIED_OPENS, sc.ERRNO(errno.EACCES))):
            for name in names:
                nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
                if nr < 0:  # not a syscall of this architecture
                    continue
                f.add_rule(action, nr)
        rfd, wfd = os.pipe()
        try:
            with os.fdopen(wfd, "wb", closefd=False) as w:
                f.export_bpf(w)
            os.close(wfd)
            wfd = -1
            chunks = []
            while chunk := os.read(rfd, 65536):
                chunks.append(chunk)
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        return b"".join(chunks), "libseccomp"
    except (OSError, ValueError, RuntimeError) as err:
        return None, f"failed to compile ({type(err).__name__}: {err})"


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
        os.setresuid(NOBODY, NOBODY, NOBODY)
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
    except BaseException:  # noqa: BLE001: hostile objects may raise anything
        name = "Exception"
    try:
        text = str(err)[:200]
    except BaseException:  # noqa: BLE001
        text = "(message could not be printed)"
    return f"{name}: {text}"


def _run(program, limits: dict) -> dict:
    """Execute the compiled program in a contained child; the outcome as a report."""
    sys.setrecursionlimit(200)
    env = {"__builtins__": _SAFE_BUILTINS}
    try:
        exec(program, env)  # noqa: S102: the sandbox's purpose
        if "result" not in env:
            return {"kind": "runtime", "detail": "the program did not assign `result`"}
        text = str(env["result"])
        if len(text) > int(limits["max_output_chars"]):
            return {"kind": "output_too_large", "detail": f"str(result) has {len(text)} characters"}
        return {"kind": "ran", "output": text}
    except MemoryError:
        return {"kind": "memory", "detail": "memory limit exceeded"}
    except RecursionError:
        return {"kind": "runtime", "detail": "RecursionError: maximum recursion depth exceeded"}
    except BaseException as err:  # noqa: BLE001: the program's own error, reported as feedback
        return {"kind": "runtime", "detail": _describe(err)}


def _child(code: str, limits: dict, wfd: int) -> None:
    """Runs in the forked child: compile, contain, run, report. Never returns, whatever the
    program raises or however its exception misbehaves when printed."""
    try:
        report = {"kind": "runtime", "detail": "the program's outcome could not be reported"}
        try:
            # Compiled before containment: `\N{...}` escapes load unicodedata from disk.
            program = compile(code, "<program>", "exec")
        except BaseException as err:  # noqa: BLE001: sandbox.py parses first; belt and braces
            report = {"kind": "syntax", "detail": _describe(err)}
        else:
            try:
                wfd = _contain(limits, wfd)
            except BaseException as err:  # noqa: BLE001
                report = {"kind": "sandbox_error", "detail": f"containment failed: {_describe(err)}"}
            else:
                try:
                    report = _run(program, limits)
                except BaseException:  # noqa: BLE001: e.g. MemoryError inside a handler
                    pass
        try:
            data = json.dumps(report).encode()
        except BaseException:  # noqa: BLE001
            data = b'{"kind": "runtime", "detail": "the program\'s outcome could not be encoded"}'
        os.write(wfd, data[:MAX_REPORT_BYTES])
    finally:
        os._exit(0)


def run_one(code: str, limits: dict) -> dict:
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
        if not isinstance(report, dict) or not isinstance(report.get("kind"), str):
            raise ValueError("not a report")
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


# The probe runs in a contained child: the same layers as a program, then tries what they forbid.
_PROBE = {"cpu_s": 1, "wall_s": 2.0, "memory_mb": 256, "max_output_chars": 4000}


def _probe_child(wfd: int) -> None:
    try:
        facts = {"seccomp": _BPF_STATE, "uid": None, "fork": "allowed", "open": "allowed"}
        try:
            fd = _contain(_PROBE, wfd)
        except BaseException as err:  # noqa: BLE001
            os.write(wfd, json.dumps({"error": _describe(err), **facts}).encode())
            return
        if _BPF_BUF is not None:
            facts["seccomp"] = "on (libseccomp)"
        facts["uid"] = os.getuid()
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
