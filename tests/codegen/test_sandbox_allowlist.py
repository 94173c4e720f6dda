"""The OS layer's seccomp allow-list and containment before compiling, each class of attack on
both paths: AST-checked (`verify`, refused or contained) and AST-bypassed (`execute`, the
program reaches os and ctypes through the classic walk). Every target lives outside the
sandbox and is owned by the sandbox's own uid, so only the seccomp layer stands between the
program and it: a file's extended attributes and mode, another process to signal.

Skipped, with the reason printed (pytest -rs), where the machine cannot apply seccomp."""
import errno
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from reference.codegen.sandbox import Verifier
from tests.codegen.test_sandbox_os_layer import PRELUDE

NOBODY = 65534
CTYPES = "ct = imp('sys').modules['ctypes']\nlibc = ct.CDLL(None, use_errno=True)\n"
# Syscall numbers past the measured list (x86_64): ones newer than libseccomp 2.5's name table
# (fchmodat2 452 ... file_setattr 469), ones no kernel has assigned, and a far one. 335 and
# 336 are left out: Linux passes `uretprobe` (6.11+) and `uprobe` (6.16+) past seccomp by
# design; outside a probe's trampoline they only fail or kill their caller.
NEW_NUMBERS = list(range(452, 471)) + [340, 400, 423, 471, 480, 999, 4096]


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2) as v:
        seccomp = str(v.containment.get("seccomp", ""))
        if not seccomp.startswith("on"):
            pytest.skip(f"seccomp is not available here ({seccomp})")
        yield v


def _owned_by_the_sandbox(path: Path) -> None:
    # As root the child runs as nobody: give it the file, so the uid drop does not protect it.
    if os.getuid() == 0:
        os.chown(path, NOBODY, NOBODY)


@pytest.fixture
def target():
    """A file outside the sandbox that the sandbox's uid owns, with one extended attribute."""
    d = Path(tempfile.mkdtemp(prefix="nano_target_", dir="/tmp"))
    d.chmod(0o755)
    f = d / "file"
    f.write_text("x")
    f.chmod(0o644)
    try:
        os.setxattr(f, "user.keep", b"1")
    except OSError as err:
        shutil.rmtree(d)
        pytest.skip(f"user xattrs are not supported on /tmp here ({err})")
    _owned_by_the_sandbox(f)
    yield f
    shutil.rmtree(d)


def _state(path: Path):
    return sorted(os.listxattr(path)), path.stat().st_mode & 0o7777, path.stat().st_mtime_ns


XATTR_ATTACKS = [
    "G['setxattr']('{p}', 'user.pwn', b'1')",
    "G['removexattr']('{p}', 'user.keep')",
    "G['setxattr']('{p}', 'user.pwn', b'1', follow_symlinks=False)",
    "G['chmod']('{p}', 0o777)",
    "G['utime']('{p}', (0, 0))",
    # the same through raw syscall numbers libseccomp 2.5 has no name for
    CTYPES + "libc.syscall(452, -100, b'{p}', 0o777, 0)",                  # fchmodat2
    CTYPES + "v = ct.create_string_buffer(b'1')\n"
             "args = (ct.c_uint64 * 4)(ct.addressof(v), 1, 0, 0)\n"
             "libc.syscall(463, -100, b'{p}', 0, b'user.pwn', args, 32)",  # setxattrat
    CTYPES + "libc.syscall(466, -100, b'{p}', 0, b'user.keep')",           # removexattrat
    # file_setattr
    CTYPES + "attr = (ct.c_uint64 * 8)()\nlibc.syscall(469, -100, b'{p}', attr, 64, 0)",
]


@pytest.mark.parametrize("attack", XATTR_ATTACKS)
def test_file_metadata_outside_the_sandbox_cannot_change(verifier, target, attack):
    before = _state(target)
    body = attack.format(p=target)
    assert verifier.verify(PRELUDE + body, "never").kind == "unsafe"          # AST-checked
    verifier.verify("result = 1", "1")
    out = verifier.execute(PRELUDE + body + "\nresult = 'done'")  # AST-bypassed
    assert out["kind"] in {"ran", "runtime"}, out
    assert _state(target) == before


def test_syscall_numbers_beyond_the_allow_list_are_refused(verifier):
    body = (CTYPES + "out = []\n"
            f"for n in {NEW_NUMBERS}:\n"
            "    out.append((n, libc.syscall(n, 0, 0, 0, 0, 0, 0), ct.get_errno()))\n"
            "result = out")
    assert verifier.verify(PRELUDE + body, "never").kind == "unsafe"
    out = verifier.execute(PRELUDE + body)
    assert out["kind"] == "ran", out
    assert out["output"] == str([(n, -1, errno.EPERM) for n in NEW_NUMBERS])


@pytest.mark.parametrize("name, call, allowed", [
    ("F_GETFL", "libc.fcntl(3, 3)", True),
    ("F_SETFL O_NONBLOCK", "libc.fcntl(3, 4, 0o4000)", True),
    ("F_SETFL O_ASYNC", "libc.fcntl(3, 4, 0o20000)", False),
    ("F_SETOWN", "libc.fcntl(3, 8, 1)", False),
    ("F_SETOWN_EX", "libc.fcntl(3, 15, (ct.c_int * 2)(1, 1))", False),
    ("F_SETSIG", "libc.fcntl(3, 10, 9)", False),
    ("F_SETLEASE", "libc.fcntl(3, 1024, 1)", False),
    ("F_NOTIFY", "libc.fcntl(3, 1026, 0)", False),
    ("F_SETPIPE_SZ", "libc.fcntl(3, 1031, 4096)", False),
    ("ioctl FIOASYNC", "libc.ioctl(3, 0x5452, ct.byref(ct.c_int(1)))", False),
    ("mmap private", "libc.mmap(None, 4096, 3, 0x22, -1, 0)", True),
    ("mmap PROT_EXEC", "libc.mmap(None, 4096, 7, 0x22, -1, 0)", False),
    ("mmap MAP_SHARED", "libc.mmap(None, 4096, 3, 0x21, -1, 0)", False),
    ("mmap MAP_GROWSDOWN", "libc.mmap(None, 4096, 3, 0x122, -1, 0)", False),
    ("prctl PR_GET_DUMPABLE", "libc.prctl(3, 0, 0, 0, 0)", True),
    ("prctl PR_SET_PDEATHSIG", "libc.prctl(1, 9, 0, 0, 0)", False),
    ("prctl PR_SET_DUMPABLE", "libc.prctl(4, 1, 0, 0, 0)", False),
    ("prlimit64 raise", "libc.prlimit64(0, 9, (ct.c_uint64 * 2)(2**40, 2**40), None)", False),
    ("setpgid", "libc.setpgid(0, 0)", False),
    ("shmget", "libc.shmget(0, 4096, 0o1600)", False),
    ("msgget", "libc.msgget(0, 0o1600)", False),
    ("semget", "libc.semget(0, 1, 0o1600)", False),
    ("memfd_create", "libc.memfd_create(b'x', 0)", False),
])
def test_dual_use_syscalls_pass_only_with_harmless_arguments(verifier, name, call, allowed):
    body = (CTYPES + "libc.mmap.restype = ct.c_long\n"
            f"r = {call}\nresult = (r, ct.get_errno())")
    assert verifier.verify(PRELUDE + body, "never").kind == "unsafe"
    out = verifier.execute(PRELUDE + body)
    assert out["kind"] == "ran", out
    if allowed:
        assert not out["output"].startswith("(-1,"), out
    else:
        assert out["output"] == f"(-1, {errno.EPERM})", out


def test_the_x32_abi_kills_the_child(verifier):
    out = verifier.execute(PRELUDE + CTYPES + "result = libc.syscall(0x40000000 | 39)")
    assert out["kind"] == "runtime" and out["detail"] == "killed by SIGSYS", out


# --- no signal leaves the child -------------------------------------------------------------

# Every route from a contained program to a signal in another process, aimed at pid {v}.
_OWN_PIPE = ("\nlibc.fcntl(3, 10, 9)\nlibc.fcntl(3, 4, 0o20000 | 0o4000)\n"  # F_SETSIG, O_ASYNC
             "libc.ioctl(3, 0x5452, ct.byref(ct.c_int(1)))\n"               # FIOASYNC
             "buf = ct.create_string_buffer(65536)\n"
             "for i in range(4):\n    libc.write(3, buf, 65536)\n")
SIGNAL_ROUTES = {
    "kill": "G['kill']({v}, 9)",
    "kill_group": "G['kill'](-{v}, 9)",
    "kill_every_process_of_the_uid": "G['kill'](-1, 9)",
    "killpg": "G['killpg']({v}, 9)",
    "tkill": CTYPES + "libc.syscall(200, {v}, 9)",
    "tgkill": CTYPES + "libc.syscall(234, {v}, {v}, 9)",
    "rt_sigqueueinfo": CTYPES + "libc.syscall(129, {v}, 9, (ct.c_int * 32)(9, 0, -1))",
    "pidfd_send_signal": CTYPES + "fd = libc.syscall(434, {v}, 0)\n"
                                  "libc.syscall(424, fd, 9, None, 0)",
    # ownership of the report pipe plus O_ASYNC: the kernel signals the owner when the
    # zygote reads from the full pipe (the round-3 escape), by pid, by group, and _EX
    "fcntl_setown_pid": CTYPES + "libc.fcntl(3, 8, {v})" + _OWN_PIPE,
    "fcntl_setown_group": CTYPES + "libc.fcntl(3, 8, -{v})" + _OWN_PIPE,
    "fcntl_setown_ex_pid": CTYPES + "libc.fcntl(3, 15, (ct.c_int * 2)(1, {v}))" + _OWN_PIPE,
    "fcntl_setown_ex_group": CTYPES + "libc.fcntl(3, 15, (ct.c_int * 2)(2, {v}))" + _OWN_PIPE,
    "timer_create_thread_id": CTYPES + "sev = (ct.c_int * 16)(0, 0, 9, 4, {v})\ntid = ct.c_int()\n"
                              "libc.syscall(222, 1, sev, ct.byref(tid))\n"
                              "libc.syscall(223, tid.value, 0, "
                              "(ct.c_long * 4)(0, 0, 0, 1000), None)",
}


@pytest.fixture
def victim():
    """A process outside the sandbox with the sandbox's uid, in its own session."""
    kw = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.getuid() == 0 else {}
    p = subprocess.Popen(["sleep", "60"], start_new_session=True, **kw)
    yield p
    p.kill()
    p.wait()


@pytest.mark.parametrize("route", SIGNAL_ROUTES.values(), ids=SIGNAL_ROUTES.keys())
def test_no_route_delivers_a_signal_to_another_process(verifier, victim, route):
    body = route.format(v=victim.pid) + "\nresult = 'sent'"
    assert verifier.verify(PRELUDE + body, "never").kind == "unsafe"
    before = verifier.replaced
    out = verifier.execute(PRELUDE + body)
    assert out["kind"] in {"ran", "runtime", "sandbox_error"}, out
    time.sleep(0.05)
    assert victim.poll() is None, f"the victim died: {out}"
    assert verifier.replaced == before and verifier.verify("result = 6 * 7", "42").ok


# --- contain before compiling ---------------------------------------------------------------

def _finally_bomb(depth: int) -> str:
    """try/finally nested `depth` deep: the compiler emits each finally body twice, so its
    memory and time double per level (18 deep: 897 characters, 772 MB, 5.9 s uncontained)."""
    lines, pad = ["x = 0"], ""
    for _ in range(depth):
        lines += [pad + "try:", pad + " x += 1", pad + "finally:"]
        pad += " "
    return "\n".join(lines + [pad + "x += 2", "result = x"])


COMPILE_BOMBS = [
    ("finally_18", _finally_bomb(18)),
    ("finally_19_in_a_function", "def f():\n" + "\n".join(
        " " + line for line in _finally_bomb(19).splitlines()) + "\n return x\nresult = f()"),
]


@pytest.mark.parametrize("name, code", COMPILE_BOMBS, ids=[b[0] for b in COMPILE_BOMBS])
def test_the_compiler_runs_inside_the_memory_limit(name, code):
    # CPU and wall limits far above what the bomb needs to pass 64 MB: only the address-space
    # limit, in force before compile(), can end it this way, on both paths.
    with Verifier(workers=1, limits={"memory_mb": 64, "cpu_s": 20, "wall_s": 20.0}) as v:
        for run in (lambda: v.verify(code, "never"), lambda: v.execute(code)):
            t0 = time.monotonic()
            r = run()
            kind = r.kind if hasattr(r, "kind") else r["kind"]
            assert kind == "memory", r
            assert time.monotonic() - t0 < 10


def test_escapes_that_load_modules_still_compile_inside_the_sandbox(verifier):
    r = verifier.verify("result = '\\N{BULLET}' + '\\N{GREEK SMALL LETTER ALPHA}'", "\u2022\u03b1")
    assert r.ok, r
