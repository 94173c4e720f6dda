"""The student's first hour, scripted end to end (issue 29), through the README's commands:
copy the system file, make the usual mistakes one at a time (each one clear line, nothing
written), smoke-submit one benchmark then another into one submission, check it, report it;
the committed reference submission is byte-identical afterwards. Slow (two real smoke
submissions): `make test-slow`; .ci/run walks the same path on every run."""
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results/closed/reference"
SYSTEM = "first-hour-test"


def _digest(tree: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(tree.rglob("*")):
        h.update(str(p.relative_to(tree)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def system_file():
    path = ROOT / "systems" / f"{SYSTEM}.yaml"
    shutil.copy(ROOT / "systems/cpu.yaml", path)  # step 1: copy the system file
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.slow
def test_a_student_first_hour(tmp_path, system_file):
    before = _digest(REFERENCE)
    out = tmp_path / "results"
    base = system_file.read_text()
    sub = [sys.executable, "-m", "loadgen_harness.submission", "--system", SYSTEM,
           "--profile", "smoke", "--out", str(out)]
    # step 2: the mistakes, one at a time: each is one line, and nothing is written
    mistakes = [
        (base.replace("workers: 2", "workers: 8"), ["--submitter", "alice"], "8 workers"),
        (base.replace("nano-codegen:", "nano-codgen:"), ["--submitter", "alice"],
         "did you mean nano-codegen"),
        (base.replace("device: cpu", "device: cuda"), ["--submitter", "alice"], "no GPU"),
        (base, ["--submitter", "reference"], "REFERENCE=1"),
        (base, ["--submitter", "alice", "--benchmarks", "nano-reakt"], "nano-reakt"),
        (base, ["--submitter", "../alice"], "bad SUBMITTER"),
    ]
    for text, args, said in mistakes:
        system_file.write_text(text)
        r = subprocess.run(sub + args, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and said in r.stderr, (said, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists()
    system_file.write_text(base)
    # step 3: one benchmark, then another, into one submission
    for bench in ("nano-codegen", "nano-react"):
        r = subprocess.run(sub + ["--submitter", "alice", "--benchmarks", bench], cwd=ROOT,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
    alice = out / "closed/alice"
    assert sorted(p.name for p in (alice / f"results/{SYSTEM}").iterdir()) == \
        ["nano-codegen", "nano-react"]
    # step 4: check
    r = subprocess.run([sys.executable, "-m", "compliance", "check", str(alice), "--profile",
                        "smoke"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    # step 5: report
    r = subprocess.run([sys.executable, "-m", "loadgen_harness.report", str(alice), "--out",
                        str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "report/index.html").is_file(), r.stderr[-2000:]
    assert _digest(REFERENCE) == before
