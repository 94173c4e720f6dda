"""Run one LoadGen test in a child process under a watchdog.

    from loadgen_harness.runner import run_test
    status = run_test(spec, timeout_s=300)     # raises RunError on any failure

A SUT exception, a crash of the child (LoadGen aborts or segfaults on some SUT mistakes) or a
sample that is never completed (StartTest would wait forever) ends that run with a RunError
whose message says which, plus the tail of the child's log. The parent never hangs: past
`timeout_s` the child's whole process group is killed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadgen_harness.spec import RunSpec


class RunError(Exception):
    """A LoadGen run that did not finish cleanly."""


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def run_test(spec: RunSpec | dict, timeout_s: float, poll_s: float = 0.2, on_poll=None) -> dict:
    """Run the test described by `spec` (a RunSpec, or its fields as a dict; see
    loadgen_harness.child); returns run_status.

    on_poll(elapsed_s) is called while the child runs (progress displays)."""
    spec = spec if isinstance(spec, RunSpec) else RunSpec.from_dict(spec)
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "run_spec.json"
    spec.write(spec_path)
    log_path = out / "child.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "loadgen_harness.child", str(spec_path)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent,
                                cwd=Path(__file__).resolve().parent.parent)
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        try:
            while proc.poll() is None:
                if on_poll is not None:
                    on_poll(time.monotonic() - t0)
                if time.monotonic() > deadline:
                    _kill(proc)
                    raise RunError(
                        f"watchdog: {spec.scenario} {spec.mode} run passed its {timeout_s:.0f} s "
                        f"limit and was killed (a sample that is never completed hangs LoadGen)."
                        f"\n{_tail(log_path)}")
                time.sleep(poll_s)
        except BaseException:
            _kill(proc)  # Ctrl-C in the parent must not leave the child running
            raise
    status_path = out / "run_status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    if proc.returncode != 0 or not status.get("ok"):
        if proc.returncode < 0:
            why = f"the run's process died of {signal.Signals(-proc.returncode).name}"
        else:
            why = status.get("error") or f"the run's process exited with code {proc.returncode}"
        raise RunError(f"{spec.scenario} {spec.mode} run failed: {why}\n{_tail(log_path)}")
    return status


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (a harness killed outright
    leaves no run going on alone; Linux's PR_SET_PDEATHSIG, a no-op elsewhere)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
