"""Hostile archives are refused member by member, and nothing lands outside a temp dir."""
import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from compliance import archive
from compliance.check import check_path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"


def _tar(path: Path, members):
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)


def _info(name, data=b"x", kind=tarfile.REGTYPE, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, linkname
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, data if kind == tarfile.REGTYPE else None


def test_valid_submission_archive_passes(tmp_path):
    # the smoke fixture's submitter is `ci`: an archive is named after its submitter (L105)
    path = tmp_path / "ci.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(SMOKE, arcname="ci")
    assert check_path(path, "smoke").valid
    zpath = tmp_path / "ci.zip"
    shutil.make_archive(str(zpath.with_suffix("")), "zip", SMOKE)
    assert check_path(zpath, "smoke").valid


@pytest.mark.parametrize("member, why", [
    (_info("../evil.txt"), "'..'"),
    (_info("/tmp/evil-abs.txt"), "absolute"),
    (_info("a/../../evil.txt"), "'..'"),
    (_info("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), "link"),
    (_info("hard", kind=tarfile.LNKTYPE, linkname="/etc/passwd"), "link"),
    (_info("dev", kind=tarfile.CHRTYPE), "special"),
    (_info("fifo", kind=tarfile.FIFOTYPE), "special"),
])
def test_hostile_tar_members_are_refused(tmp_path, member, why):
    path = tmp_path / "hostile.tar.gz"
    _tar(path, [member])
    dest = tmp_path / "dest"
    dest.mkdir()
    problems = archive.extract(path, dest)
    assert problems and why in problems[0]
    assert list(dest.rglob("*")) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil-abs.txt").exists()
    report = check_path(path)
    assert "L104" in report.rule_ids() and not report.valid


def test_huge_and_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    path = tmp_path / "big.tar.gz"
    _tar(path, [_info("big.bin", b"\0" * 5000)] + [_info(f"f{i}") for i in range(10)])
    dest = tmp_path / "dest"
    dest.mkdir()
    problems = archive.extract(path, dest)
    assert any("larger than the limit" in p for p in problems)
    assert any("more than 5 members" in p for p in problems)
    assert not (dest / "big.bin").exists()


def test_zip_traversal_and_symlink_are_refused(tmp_path):
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.txt", "x")
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    dest = tmp_path / "dest"
    dest.mkdir()
    problems = archive.extract(path, dest)
    assert len(problems) == 2 and list(dest.rglob("*")) == []
    assert not (tmp_path / "evil.txt").exists()


def test_garbage_archive_is_a_finding_not_a_crash(tmp_path):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(os.urandom(2000))
    report = check_path(path)
    assert not report.valid and "L104" in report.rule_ids()


def test_a_zip_without_mode_bits_is_read_as_regular_files(tmp_path):
    """ZipFile.writestr (and Windows tools) write members with no file type bits."""
    path = tmp_path / "ci.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(SMOKE.rglob("*")):
            if p.is_file():
                zf.writestr(zipfile.ZipInfo(f"ci/{p.relative_to(SMOKE).as_posix()}"),
                            p.read_bytes())
    assert zipfile.ZipFile(path).infolist()[0].external_attr >> 16 in (0, 0o600)
    report = check_path(path, "smoke")
    assert "L104" not in report.rule_ids() and report.valid, report.rule_ids()


def test_an_archive_expanding_far_beyond_its_size_is_refused(tmp_path):
    """A zip bomb: a few tens of KB expand to 40 MiB; the expansion budget refuses it."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/submission.json", "{}")
        zf.writestr("bomb/results/pad.txt", b"\0" * (40 * 2**20))
    assert path.stat().st_size < 200_000
    dest = tmp_path / "out"
    dest.mkdir()
    problems = archive.extract(path, dest)
    assert any("expansion budget" in p or "larger than the limit" in p for p in problems)
    assert sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) < 20 * 2**20
