"""Agent traces stored gzip-compressed (agent_trace.jsonl.gz, as the committed reference
submission keeps them) check exactly like plain ones; a file stored both ways, a corrupt or
an oversized (bomb) gzip are findings, never a crash."""
import gzip
import shutil
from pathlib import Path

from compliance.check import check_path
from loadgen_harness.untrusted.tree import MAX_FILE_BYTES, Tree
from loadgen_harness.submission import compress_all_traces

SMOKE = Path(__file__).resolve().parents[1] / "fixtures" / "smoke_submission"
TRACE = "results/cpu/nano-react/Offline/performance/run_1/agent_trace.jsonl"


def _compressed_copy(tmp_path) -> Path:
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    compress_all_traces(root)
    return root


def test_compressed_traces_check_as_the_plain_ones(tmp_path):
    root = _compressed_copy(tmp_path)
    assert not list(root.rglob("agent_trace.jsonl")) and list(root.rglob("agent_trace.jsonl.gz"))
    assert Tree(root).bytes(TRACE)[0] == (SMOKE / TRACE).read_bytes()
    report = check_path(root, "smoke")
    assert report.valid, [f.to_dict() for f in report.findings][:3]


def test_compression_is_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(SMOKE / "results/cpu/nano-react/Offline/performance", d)
        compress_all_traces(d)
    assert (a / "run_1/agent_trace.jsonl.gz").read_bytes() == \
        (b / "run_1/agent_trace.jsonl.gz").read_bytes()


def test_a_trace_stored_both_ways_is_refused(tmp_path):
    root = _compressed_copy(tmp_path)
    shutil.copy(SMOKE / TRACE, root / TRACE)  # the plain one back beside the .gz
    report = check_path(root, "smoke")
    assert "L102" in {f.rule for f in report.findings}


def test_corrupt_and_bomb_gzip_are_findings(tmp_path):
    root = _compressed_copy(tmp_path)
    gz = root / (TRACE + ".gz")
    gz.write_bytes(gz.read_bytes()[:100])  # truncated
    data, problem = Tree(root).bytes(TRACE)
    assert data is None and "gzip" in problem
    assert not check_path(root, "smoke").valid
    with gzip.open(gz, "wb") as f:  # decompresses past the size limit
        chunk = b"\n" * (1 << 20)
        for _ in range(MAX_FILE_BYTES // len(chunk) + 2):
            f.write(chunk)
    assert gz.stat().st_size < 1 << 20
    data, problem = Tree(root).bytes(TRACE)
    assert data is None and "limit" in problem
    report = check_path(root, "smoke")
    assert not report.valid and "X901" not in {f.rule for f in report.findings}
