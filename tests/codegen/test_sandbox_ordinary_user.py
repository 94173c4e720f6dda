"""The verifier run by an ordinary user: the uid drop does not apply (the child keeps the
verifier's uid, so the kernel would let it signal the verifier), and the seccomp layer alone
must keep every signal in the child. A program aims each route at the verifier's process, its
process group and every process of the uid (-1), while the other worker runs an honest program;
the verifier must live, answer, and lose no worker.

As root (CI) the verifier is started under `setpriv` as nobody. Its only privilege is
CAP_DAC_READ_SEARCH, kept so that nobody can reach the interpreter where it is installed
(/root/.pyenv here); it grants no signal (that is CAP_KILL), and the sandbox's child drops it.
Skipped, with the reason printed, where setpriv or seccomp is missing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.codegen.test_sandbox_allowlist import SIGNAL_ROUTES

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, sys
from reference.codegen.sandbox import Verifier
from tests.codegen.test_sandbox_os_layer import PRELUDE
routes = json.loads(sys.argv[1])
honest = "x = 0\\nfor i in range(2 * 10**5):\\n    x += 1\\nresult = x"
me, group = os.getpid(), os.getpgid(0)
outs = []
with Verifier(workers=2) as v:
    for route in routes:
        for target in (me, group, -1):
            body = PRELUDE + route.format(v=target) + "\\nresult = 'sent'"
            checked = v.verify(body, "never").kind
            fut = v.submit(honest, "200000")
            out = v.execute(body)
            outs.append([route[:40], target, checked, out["kind"], fut.result()[0].kind])
    print(json.dumps({"uid": os.getuid(), "containment": v.containment, "outs": outs,
                      "replaced": v.replaced, "after": v.verify("result = 6 * 7", "42").kind}))
"""


def test_no_program_signals_a_verifier_run_by_an_ordinary_user():
    cmd = [sys.executable, "-c", SCRIPT, json.dumps(list(SIGNAL_ROUTES.values()))]
    if os.getuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is not installed: cannot run as an ordinary user")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"] + cmd
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                       start_new_session=True)  # its own group: -1 and group kills stay in it
    assert p.returncode == 0, f"the verifier died (returncode {p.returncode}): {p.stderr[-2000:]}"
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if not str(r["containment"].get("seccomp", "")).startswith("on"):
        pytest.skip(f"seccomp is not available here ({r['containment'].get('seccomp')})")
    assert r["uid"] != 0 and r["containment"]["uid"] == r["uid"]
    for route, target, checked, kind, honest in r["outs"]:
        assert checked == "unsafe", (route, target, checked)
        assert kind in {"ran", "runtime", "sandbox_error"}, (route, target, kind)
        assert honest == "ok", (route, target, honest)
    assert r["replaced"] == 0 and r["after"] == "ok"
