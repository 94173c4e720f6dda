"""Intake: hostile archives and files are findings, never tracebacks (rules.md section 9)."""
import io
import lzma
import shutil
import tarfile
import zipfile
from pathlib import Path

from compliance.archive import extract
from compliance.check import check_path
from loadgen_harness.untrusted.tree import has_duplicate_keys
from tests.compliance.mutate import apply

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
CONF = "results/cpu/nano-react/Offline/user.conf"
SUMMARY = "results/cpu/nano-react/Offline/performance/run_1/mlperf_log_summary.txt"


def test_an_unsupported_zip_method_is_a_finding(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("sub/submission.json", "{}")
    data = bytearray(z.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # compression method 9: deflate64
        i = data.find(sig)
        off = i + (8 if sig == b"PK\x03\x04" else 10)
        data[off:off + 2] = (9).to_bytes(2, "little")
    z.write_bytes(bytes(data))
    problems = extract(z, tmp_path / "out")
    assert problems and "unreadable" in problems[0]
    assert not check_path(z).valid


def test_an_encrypted_zip_member_is_a_finding(tmp_path):
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("sub/submission.json", "{}")
    data = bytearray(z.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the encrypted flag bit
        i = data.find(sig)
        data[i + off] |= 1
    z.write_bytes(bytes(data))
    assert any("unreadable" in p for p in extract(z, tmp_path / "out"))


def test_a_corrupt_xz_tar_is_a_finding(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("sub/submission.json")
        payload = b"{}" * 50000
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    data = bytearray(lzma.compress(buf.getvalue()))
    data[len(data) // 2] ^= 0xFF
    t = tmp_path / "c.tar"  # tarfile opens any compression by content
    t.write_bytes(bytes(data))
    assert extract(t, tmp_path / "out")
    assert not check_path(t).valid


def test_an_empty_or_non_utf8_user_conf_or_summary_is_a_finding(tmp_path):
    for rel, content in ((CONF, b""), (CONF, b"\xff\xfe bad"), (SUMMARY, b"\xff\xfe")):
        root = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
        shutil.copytree(SMOKE, root)
        (root / rel).write_bytes(content)
        report = check_path(root, "smoke")
        assert "G312" in report.rule_ids(), (rel, content)


def test_a_duplicate_key_with_space_before_the_colon_is_found():
    line = '{"a" : 1, "a": 2}'
    assert has_duplicate_keys(line, 1)


def test_records_separated_by_carriage_returns_do_not_escape_the_budget(tmp_path):
    root = tmp_path / "s"
    shutil.copytree(SMOKE, root)
    trace = root / "results/cpu/nano-react/Offline/performance/run_1/agent_trace.jsonl"
    trace.write_text(trace.read_text().replace("\n", "\r"))
    report = check_path(root, "smoke")
    assert not report.valid and "T601" in report.rule_ids()


def test_an_archive_names_its_submitter_as_a_folder_does(tmp_path):
    import tarfile as _tar
    src = tmp_path / "closed/bob"
    shutil.copytree(SMOKE, src)
    for rel in src.glob("results/cpu/*/*/measurements.json"):
        apply(src, {"op": "json_set", "path": str(rel.relative_to(src)),
                    "pointer": ["submitter"], "value": "bob"})
    for name, ok in (("alice.tar.gz", False), ("Bob.tar.gz", True), ("bоb.tar.gz", True)):
        with _tar.open(tmp_path / name, "w:gz") as tf:  # the last: a Cyrillic о
            tf.add(src, arcname="sub")
        report = check_path(tmp_path / name, "smoke")
        assert ("L105" in report.rule_ids()) is not ok, (name, report.rule_ids())


def test_names_are_normalised_to_one_person():
    from compliance.checks.identity import normalise_name
    assert normalise_name("Alice") == normalise_name("аlice") == normalise_name("ＡＬＩＣＥ")
    assert normalise_name("alice") != normalise_name("bob")
