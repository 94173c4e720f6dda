"""Open a submission archive (.tar.gz, .tgz, .tar, .zip) safely into a temporary directory.

Members are refused, each as a problem string, never extracted, when they have an absolute
path, a `..` component, are links, devices or other special files, or would exceed the size
or count limits. Nothing is ever written outside the destination directory, and no member's
content is executed or interpreted here.
"""
from __future__ import annotations

import lzma
import stat
import tarfile
import zlib
import zipfile
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20
# expanded size at most this multiple of the archive's own size (plus a floor): an honest
# submission's logs and traces compress about 5-20x; a zip bomb compresses hundreds of times
MAX_EXPANSION = 100
EXPANSION_FLOOR_BYTES = 16 * 2**20
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


MEMBER_ERRORS = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError,
                 NotImplementedError, RuntimeError, lzma.LZMAError, zlib.error)


def _drop(dest: Path, rel: str) -> None:
    try:
        (dest / rel).unlink()
    except OSError:
        pass


def is_archive(path: Path) -> bool:
    return Path(path).name.endswith(ARCHIVE_SUFFIXES)


def _safe_name(name: str) -> str | None:
    """The member's relative path if it is safe, else None."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return None
    rel = "/".join(p for p in parts if p not in ("", "."))
    return rel or None


def extract(archive: Path, dest: Path) -> list[str]:
    """Extract the safe members of `archive` into `dest`; returns the refusals."""
    archive, dest = Path(archive), Path(dest)
    problems: list[str] = []
    try:
        budget = min(MAX_TOTAL_BYTES,
                     EXPANSION_FLOOR_BYTES + MAX_EXPANSION * archive.stat().st_size)
    except OSError:
        budget = EXPANSION_FLOOR_BYTES
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, dest, problems, budget)
        else:
            _extract_tar(archive, dest, problems, budget)
    except (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
            ValueError, NotImplementedError, RuntimeError, lzma.LZMAError, zlib.error) as err:
        # deflate64 or another unsupported method (NotImplementedError), an encrypted member
        # (RuntimeError), a corrupt xz, bz2 or gzip stream: a finding, never a traceback
        problems.append(f"archive unreadable: {type(err).__name__}: {str(err)[:200]}")
    return problems


def _write(dest: Path, rel: str, src, size_left: int, problems: list[str], name: str) -> int:
    target = dest / rel
    if dest.resolve() not in target.resolve().parents:
        problems.append(f"{name}: path escapes the archive root")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    # a member stored gzip-compressed (NAME.gz, tree.COMPRESSIBLE) is read decompressed: its
    # inflated size counts against the budget too, measured as it streams (nothing kept)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if rel.endswith(".gz") else None
    with open(target, "wb") as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            written += len(chunk)
            if inflate is not None:
                written += _inflated(inflate, chunk, MAX_MEMBER_BYTES + 1)
            if written > MAX_MEMBER_BYTES or written > size_left:
                out.close()
                target.unlink()
                problems.append(f"{name}: member larger than the limit "
                                f"({MAX_MEMBER_BYTES} bytes, or the archive's expansion budget)")
                return written
            out.write(chunk)
    return written


def _inflated(d, chunk: bytes, cap: int) -> int:
    """Bytes `chunk` inflates to through decompressor `d` (at most about `cap` more), output
    discarded; a corrupt or finished stream counts nothing more (the tree reports it)."""
    n = 0
    try:
        while chunk and not d.eof and n <= cap:
            n += len(d.decompress(chunk, 1 << 20))
            chunk = d.unconsumed_tail
    except zlib.error:
        pass
    return n


def _extract_tar(archive: Path, dest: Path, problems: list[str], budget: int) -> None:
    total = 0
    with tarfile.open(archive, "r:*") as tf:
        for count, m in enumerate(tf):
            if count >= MAX_MEMBERS:
                problems.append(f"more than {MAX_MEMBERS} members: the rest were refused")
                break
            rel = _safe_name(m.name)
            if rel is None:
                problems.append(f"{m.name!r}: absolute path or '..' refused")
                continue
            if m.issym() or m.islnk():
                problems.append(f"{m.name}: link refused")
                continue
            if m.isdir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            if not m.isfile():
                problems.append(f"{m.name}: special file refused")
                continue
            if m.size > MAX_MEMBER_BYTES or total + m.size > budget:
                problems.append(f"{m.name}: member larger than the limit ({m.size} bytes; "
                                f"{budget} bytes expanded in all for this archive)")
                continue
            try:
                src = tf.extractfile(m)
                if src is not None:
                    total += _write(dest, rel, src, budget - total, problems, m.name)
            except MEMBER_ERRORS as err:  # a corrupt stream mid-member
                _drop(dest, rel)
                problems.append(f"{m.name}: unreadable member ({type(err).__name__}: "
                                f"{str(err)[:120]})")
                break  # a compressed tar cannot be read past a corrupt stream


def _extract_zip(archive: Path, dest: Path, problems: list[str], budget: int) -> None:
    total = 0
    with zipfile.ZipFile(archive) as zf:
        for count, info in enumerate(zf.infolist()):
            if count >= MAX_MEMBERS:
                problems.append(f"more than {MAX_MEMBERS} members: the rest were refused")
                break
            rel = _safe_name(info.filename.rstrip("/"))
            if rel is None:
                problems.append(f"{info.filename!r}: absolute path or '..' refused")
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                problems.append(f"{info.filename}: link refused")
                continue
            if info.is_dir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            # zips written without Unix mode bits (ZipFile.writestr, Windows tools) carry no
            # file type: those members are regular files
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                problems.append(f"{info.filename}: special file refused")
                continue
            if info.file_size > MAX_MEMBER_BYTES or total + info.file_size > budget:
                problems.append(f"{info.filename}: member larger than the limit "
                                f"({info.file_size} bytes; {budget} bytes expanded in all "
                                "for this archive)")
                continue
            try:
                with zf.open(info) as src:
                    total += _write(dest, rel, src, budget - total, problems, info.filename)
            except MEMBER_ERRORS as err:  # encrypted, deflate64, corrupt: refused, not a crash
                _drop(dest, rel)
                problems.append(f"{info.filename}: unreadable member ({type(err).__name__}: "
                                f"{str(err)[:120]})")
