"""Ragged attention over the KV cache for CPU inference: a small C kernel (attention.c) that
the model's batched decode and prefill use instead of padded SDPA groups when it can.

It is built on first use with the system's C compiler (`cc`, or $CC) into build/attention/
(a temporary directory when the checkout is read-only) and loaded with ctypes: no torch
headers, about a second to compile. Where it cannot be used (no AVX2/FMA, no compiler, a
GPU, bf16, training, a head size not a multiple of 8), the model keeps torch's SDPA path,
which gives the same greedy answers (checked on every frozen and generalisation episode).

NANO_ATTENTION=sdpa forces the SDPA path (to compare the two); NANO_ATTENTION=kernel makes a
failed build an error instead of a fallback."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("attention.c")
FLAGS = ["-O3", "-mavx2", "-mfma", "-fPIC", "-shared"]  # not -march=native: one binary per ISA
# OpenMP splits a forward's (row, head) units over threads when torch has more than one. The
# library then needs libgomp.so.1, which the loader finds already in the process (torch's CPU
# wheel ships it under that soname): the kernel and torch share one thread pool. A compiler
# without OpenMP builds the serial kernel instead (the same results, one thread).
OPENMP = ["-fopenmp"]

_lock = threading.Lock()
_kernels: dict[int, "Kernel | None"] = {}


class KernelError(RuntimeError):
    """The kernel was required (NANO_ATTENTION=kernel) but cannot be built or loaded."""


def mode() -> str:
    """NANO_ATTENTION's value (auto, sdpa or kernel); KernelError for anything else (the
    harness's entry points call it first, so that a typo is one line, not a failed run)."""
    mode = os.environ.get("NANO_ATTENTION", "auto")
    if mode not in ("auto", "sdpa", "kernel"):
        raise KernelError(f"NANO_ATTENTION={mode!r}: use auto, sdpa or kernel")
    return mode


def _build_dir() -> Path:
    for d in (Path(__file__).resolve().parents[1] / "build" / "attention",
              Path(tempfile.gettempdir()) / f"nano-attention-{os.getuid()}"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise KernelError("no writable directory to build the attention kernel in")


def _build(hs: int) -> Path:
    """The shared library for head size hs: with OpenMP where the compiler has it, else the
    serial kernel (see OPENMP)."""
    try:
        return _compile(hs, FLAGS + OPENMP)
    except KernelError as err:
        if "openmp" not in str(err).lower() and "omp" not in str(err).lower():
            raise
        return _compile(hs, FLAGS)


def _compile(hs: int, flags: list[str]) -> Path:
    """The library for head size hs built with `flags`, compiled once per source and flags
    (written under a temporary name and renamed, so parallel test workers never load half a
    file)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise KernelError("no C compiler (cc or $CC)")
    flags = flags + [f"-DHS={hs}"]
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join([cc] + flags).encode()).hexdigest()
    out = _build_dir() / f"attention-hs{hs}-{digest[:16]}.so"
    if out.exists():
        return out
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        proc = subprocess.run([cc, *flags, str(SOURCE), "-o", str(tmp), "-lm"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise KernelError(f"{cc} failed: {proc.stderr.strip()[-2000:]}")
        os.replace(tmp, out)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise KernelError(f"cannot compile {SOURCE.name}: {err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


class Kernel:
    """The loaded library for one head size."""

    def __init__(self, path: Path, hs: int):
        lib = ctypes.CDLL(str(path))
        if lib.attention_head_size() != hs:
            raise KernelError(f"{path} was built for another head size")
        p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        lib.attend.argtypes = [i32, p, p, p, i32, i32, p, p, p, i64, i64, i64, p, p, p, i32]
        lib.attend.restype = ctypes.c_int
        self._attend, self.hs = lib.attend, hs

    def __call__(self, meta: "RowMeta", q, k, v, cache, layer: int) -> torch.Tensor:
        """Write k, v (N, nh, hs) into the cache rows, and attend each new token of q to its
        row's keys up to its own position: (N, nh * hs)."""
        N, nh, hs = q.shape
        for t in (q, k, v):  # each token's heads contiguous; tokens any stride apart
            if t.dtype != torch.float32 or t.stride(2) != 1 or t.stride(1) != hs:
                raise ValueError(f"attention kernel: float32 (N, nh, hs) tensors with "
                                 f"contiguous heads expected, got {t.dtype} {t.stride()}")
        kc, vc = cache.k[layer], cache.v[layer]  # (B, nh, L, hs), contiguous views
        out = torch.empty(N, nh * hs, dtype=q.dtype)
        rc = self._attend(meta.n, meta.rows, meta.starts, meta.counts, nh, kc.shape[2],
                          q.data_ptr(), k.data_ptr(), v.data_ptr(),
                          q.stride(0), k.stride(0), v.stride(0),
                          kc.data_ptr(), vc.data_ptr(), out.data_ptr(), meta.threads)
        if rc != 0:
            raise MemoryError("attention kernel: out of memory")
        return out


class RowMeta:
    """A forward's rows, starts and token counts as C int32 arrays (built once per forward),
    and the threads its attention may use (torch's, unless given)."""

    __slots__ = ("n", "rows", "starts", "counts", "threads")

    def __init__(self, rows: list[int], starts: list[int], counts: list[int],
                 threads: int | None = None):
        arr = ctypes.c_int32 * len(rows)
        self.n = len(rows)
        self.threads = torch.get_num_threads() if threads is None else threads
        self.rows, self.starts, self.counts = arr(*rows), arr(*starts), arr(*counts)


def kernel(hs: int) -> Kernel | None:
    """The kernel for head size hs, or None where SDPA must be used (see the module doc)."""
    if hs in _kernels:  # every forward asks: no lock once it is known
        return _kernels[hs]
    with _lock:
        if hs not in _kernels:
            _kernels[hs] = _load(hs)
        return _kernels[hs]


def _load(hs: int) -> Kernel | None:
    setting = mode()
    if setting == "sdpa":
        return None
    try:
        if hs % 8 or torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
            raise KernelError(f"needs AVX2 and a head size multiple of 8 (head size {hs}, "
                              f"CPU {torch.backends.cpu.get_cpu_capability()})")
        return Kernel(_build(hs), hs)
    except (KernelError, OSError) as err:
        if setting == "kernel":
            raise KernelError(str(err)) from None
        warnings.warn(f"attention kernel unavailable, using SDPA: {err}", RuntimeWarning,
                      stacklevel=3)
        return None


def usable(cache, weight: torch.Tensor) -> bool:
    """Whether a model with this weight can run the kernel over this cache: float32 on the
    CPU, the cache's length a multiple of 8 (the single-query kernel reads keys in blocks of
    8). The model checks per forward that it runs without autograd and autocast."""
    return (weight.device.type == "cpu" and weight.dtype == torch.float32
            and cache.k.dtype == torch.float32 and cache.k.shape[3] % 8 == 0)
