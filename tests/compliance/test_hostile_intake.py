"""Hostile inputs, generated small and expanding big, finish within loose bounds of time and
memory (issue 31: under 30 s and 1 GB each): garbage detail-log lines, and an archive of
gzipped traces that inflate far past the archive's expansion budget. Each check runs in its
own process, whose peak memory is read with getrusage."""
import gzip
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
MAX_S, MAX_RSS_MB = 30, 1024
PROBE = ("import json, resource, subprocess, sys, time; t = time.time(); "
         "p = subprocess.run([sys.executable, '-m', 'compliance', 'check', sys.argv[1], "
         "'--profile', 'smoke', '--json'], capture_output=True, text=True); "
         "print(json.dumps({'s': time.time() - t, 'rc': p.returncode, 'out': p.stdout[-20000:], "
         "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def _check(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    return json.loads(out.stdout)


def test_a_detail_log_of_millions_of_garbage_lines_is_bounded(tmp_path):
    sub = tmp_path / "alice"
    shutil.copytree(SMOKE, sub)
    log = sub / "results/cpu/nano-react/Offline/performance/run_1/mlperf_log_detail.txt"
    with open(log, "ab") as f:  # 8 M lines that say error: once a finding and 1 GB each
        f.write(b"error\n" * (8 * 2**20))
    got = _check(sub)
    assert got["rc"] == 1 and got["s"] < MAX_S and got["rss_mb"] < MAX_RSS_MB, got
    assert got["out"].count("LoadGen logged an error") <= 20


def test_an_archive_of_gzipped_traces_counts_their_inflated_size(tmp_path):
    sub = tmp_path / "alice"
    shutil.copytree(SMOKE, sub)
    blank = gzip.compress(b" " * (48 * 2**20), 9)  # 47 KB on disk, 48 MB inflated, each
    for trace in sorted(sub.rglob("agent_trace.jsonl")):
        trace.unlink()
        trace.with_name("agent_trace.jsonl.gz").write_bytes(blank)
    archive = tmp_path / "alice.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(sub, arcname="alice")
    assert archive.stat().st_size < 4 * 2**20
    got = _check(archive)
    assert got["rc"] == 1 and got["s"] < MAX_S and got["rss_mb"] < MAX_RSS_MB, got
    assert "L104" in got["out"] and "expansion budget" in got["out"], got["out"][-2000:]
