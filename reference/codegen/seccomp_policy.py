"""The code sandbox's seccomp policy: an allow-list, compiled once to raw BPF with libseccomp.

    from reference.codegen.seccomp_policy import compile_filter
    bpf, state = compile_filter()     # bytes (8 per instruction) and "libseccomp", or None, why

Default deny. A contained child (zygote.py) may make only the syscalls below; every other
number is answered EPERM, including numbers newer than libseccomp's name table (fchmodat2,
setxattrat, listmount, open_tree_attr, file_setattr, ...) and numbers no kernel has assigned
yet: the filter compares numbers with this list, it never needs a name for what it refuses.
The ways of opening a file answer EACCES, so a program's error reads "Permission denied".
Other architectures' entry points (int 0x80, the x32 ABI on x86_64) kill the child
(libseccomp's bad-arch action, and its x32 check on x86_64 filters).

The list was measured: strace -f of the worker over the frozen set's 1,000 oracle programs,
the reference model's 1,000 answers, the hostile corpus of test_sandbox.py and a few programs
that reach big integers, floats and `\\N{...}` escapes. After the filter is installed a child
used only mmap, brk, munmap, mremap, write and exit_group. The rest of ALLOWED is what CPython
may need on a rarer path (signal masks, clocks, its own ids, getrandom), none of which reaches
another process or a file. Dual-use syscalls pass only with harmless arguments (FILTERED):
- fcntl: descriptor flags and status flags only, never O_ASYNC; F_SETOWN(_EX), F_SETSIG,
  F_SETLEASE, F_NOTIFY, locks and pipe sizes are refused (ownership plus O_ASYNC makes the
  kernel signal another process: the round-3 finding);
- mmap / mprotect: never PROT_EXEC, and mmap only private mappings (no MAP_SHARED, hugetlb,
  growsdown ...);
- prctl: a few PR_GET_* queries; every PR_SET_* (death signal, dumpable, ptracer, mm) refused;
- prlimit64: reading this process's own limits only (pid 0, no new limit).
Refused outright, among others: kill, tkill, tgkill, rt_(tg)sigqueueinfo, pidfd_*, ioctl (its
FIOASYNC / FIOSETOWN are the other ownership route), setpgid, setsid, timer_create, mq_notify,
every xattr call, System V IPC, clone/fork/exec, sockets, and every path-taking call.

Limits: x86_64 and aarch64 names are resolved by libseccomp for the native architecture; a
name this libseccomp does not know is simply not allowed (the safe direction).
"""
from __future__ import annotations

import errno
import os

# Allowed with any arguments: none of them reaches another process, a file or the network.
ALLOWED = (
    # memory (mmap and mprotect are in FILTERED)
    "brk", "munmap", "mremap", "madvise",
    # descriptors the child already holds: 0-2 on /dev/null, 3 the report pipe
    "read", "write", "readv", "writev", "close", "lseek", "fstat",
    # leaving
    "exit", "exit_group",
    # this process's own signal state (no sending)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    # clocks and sleeping (the wall-clock limit kills a sleeper)
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    "sched_yield", "futex", "getrandom", "getrusage", "times",
    # its own identity
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
    "getresuid", "getresgid", "getpgrp", "getcwd",
)

# Open calls get EACCES instead of the default EPERM: "Permission denied" is what a program
# that tries to read a file should be told.
OPENS = ("open", "openat", "openat2", "creat", "open_by_handle_at")

_F_DUPFD, _F_GETFD, _F_SETFD, _F_GETFL, _F_SETFL = 0, 1, 2, 3, 4
_F_DUPFD_CLOEXEC = 1030
_O_ASYNC = 0o20000
_PROT_EXEC = 0x4
# mmap flags a private anonymous allocation uses (glibc malloc, pymalloc arenas, CPython's
# obmalloc); anything else (MAP_SHARED = 0x01 and MAP_SHARED_VALIDATE, MAP_GROWSDOWN,
# MAP_HUGETLB, MAP_SYNC, ...) is refused.
# PRIVATE, FIXED, ANONYMOUS, NORESERVE, STACK, FIXED_NOREPLACE
_MAP_OK = 0x02 | 0x10 | 0x20 | 0x4000 | 0x20000 | 0x100000
_ALL_BITS = 2**64 - 1
_PR_GETS = (3, 16, 21, 39)  # PR_GET_DUMPABLE, PR_GET_NAME, PR_GET_SECCOMP, PR_GET_NO_NEW_PRIVS

# name -> list of rules, each a tuple of (arg index, op, a, b) comparisons that must all hold
# (op "eq": arg == a; "masked": arg & a == b).
FILTERED: dict[str, list[tuple[tuple[int, str, int, int], ...]]] = {
    "fcntl": [((1, "eq", cmd, 0),) for cmd in (_F_GETFD, _F_SETFD, _F_GETFL, _F_DUPFD,
                                               _F_DUPFD_CLOEXEC)]
             + [((1, "eq", _F_SETFL, 0), (2, "masked", _O_ASYNC, 0))],
    "mmap": [((2, "masked", _PROT_EXEC, 0), (3, "masked", _ALL_BITS & ~_MAP_OK, 0))],
    "mprotect": [((2, "masked", _PROT_EXEC, 0),)],
    "prctl": [((0, "eq", option, 0),) for option in _PR_GETS],
    "prlimit64": [((0, "eq", 0, 0), (2, "eq", 0, 0))],
}


def compile_filter() -> tuple[bytes | None, str]:
    """The seccomp program as raw BPF, or None and the reason. Called in the verifier's own
    process (sandbox.py), once: importing pyseccomp in the zygote would make every fork of it
    slower (measured: fork+exit 0.9 ms against 0.5 ms), so the zygote only installs bytes."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, RuntimeError) as err:
        return None, f"unavailable ({type(err).__name__}: {err})"
    ops = {"eq": sc.EQ, "masked": sc.MASKED_EQ}
    try:
        f = sc.SyscallFilter(sc.ERRNO(errno.EPERM))
        # A binary tree instead of a chain of comparisons: the kernel emulates the filter for
        # every syscall number when it is installed (its action cache), once per child.
        f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        for name in ALLOWED:
            if (nr := sc.resolve_syscall(sc.Arch.NATIVE, name)) >= 0:
                f.add_rule(sc.ALLOW, nr)
        for name in OPENS:
            if (nr := sc.resolve_syscall(sc.Arch.NATIVE, name)) >= 0:
                f.add_rule(sc.ERRNO(errno.EACCES), nr)
        for name, rules in FILTERED.items():
            if (nr := sc.resolve_syscall(sc.Arch.NATIVE, name)) < 0:
                continue
            for rule in rules:
                f.add_rule(sc.ALLOW, nr, *[sc.Arg(i, ops[op], a, b) for i, op, a, b in rule])
        return _export(f), "libseccomp allow-list"
    except (OSError, ValueError, RuntimeError) as err:
        return None, f"failed to compile ({type(err).__name__}: {err})"


def _export(f) -> bytes:
    """libseccomp writes BPF to a descriptor: read it back through a pipe."""
    rfd, wfd = os.pipe()
    try:
        with os.fdopen(wfd, "wb", closefd=False) as w:
            f.export_bpf(w)
        os.close(wfd)
        wfd = -1
        chunks = []
        while chunk := os.read(rfd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
