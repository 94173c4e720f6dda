"""Render a local page in headless Chromium and report what went wrong in it.

    from tests.chromium import render
    page = render(path)   # {"errors": [...], "images": [...], "svgs": [...]}

Drives Debian's `chromium` over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on fd 3, replies and events on fd 4, each a JSON message ended by NUL), so it needs
no Python driver and no browser download. It collects console errors, uncaught exceptions and
the browser's own error log entries (a failed image load is one), then asks the page for its
images (loaded? natural size) and inline SVGs (rendered size). A fresh profile directory per
call; the browser is killed if it does not finish in time.

When chromium is missing the caller's test fails under CI (CI=true; .ci/run installs it) and
is skipped with the reason elsewhere.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1600")
PROBE = """JSON.stringify({
  images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
           width: i.naturalWidth, height: i.naturalHeight})),
  svgs: [...document.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg'))
           .map(s => { const r = s.getBoundingClientRect();
                       return {width: r.width, height: r.height}; }),
  title: document.title})"""


def chromium() -> str:
    """The chromium executable, or the test fails (CI) or skips (elsewhere) with the reason."""
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    why = "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


class _Pipe:
    def __init__(self, proc, wfd: int, rfd: int):
        self.proc, self.wfd, self.rfd = proc, wfd, rfd
        self.buf, self.events, self.next_id = b"", [], 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.proc.poll()})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params=None, session=None, timeout: float = 30.0) -> dict:
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for msg in self.events:
            if msg.get("method") == method:
                return msg
        while True:
            msg = self._read(deadline)
            self.events.append(msg)
            if msg.get("method") == method:
                return msg


def _errors(events: list[dict]) -> list[str]:
    out = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                               for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            out.append("exception: " + str(p.get("exceptionDetails", {}).get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.loadingFailed":
            out.append(f"network: {p.get('errorText')} ({p.get('type')})")
    return out


def render(page: Path, timeout: float = 60.0, probe: str | None = None,
           screenshot: Path | None = None) -> dict:
    """Load `page` (a local HTML file) and return {"errors", "images", "svgs", "title"}, plus
    "probe": the JSON value of the JavaScript expression `probe` (a string it evaluates to)
    when given, and a full-page PNG of the 1280 px wide window written to `screenshot`."""
    exe = chromium()
    extra = probe
    profile = tempfile.mkdtemp(prefix="chromium-test-")
    to_child, from_parent = os.pipe()   # commands: parent writes, child reads on fd 3
    to_parent, from_child = os.pipe()   # replies: child writes on fd 4, parent reads

    def fds():  # in the child: dup first (both fresh), then place on 3 and 4
        a, b = os.dup(to_child), os.dup(from_child)
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}",
                             "--remote-debugging-pipe", "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=fds,
                            close_fds=False)  # keeps 3 and 4 (Python's own fds close on exec)
    os.close(to_child)
    os.close(from_child)
    pipe = _Pipe(proc, from_parent, to_parent)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
        sess = pipe.call("Target.attachToTarget", {"targetId": target["targetId"],
                                                   "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            pipe.call(f"{domain}.enable", session=sess)
        pipe.call("Page.navigate", {"url": Path(page).resolve().as_uri()}, session=sess)
        pipe.wait_event("Page.loadEventFired", timeout=timeout)
        probe_result = pipe.call("Runtime.evaluate", {"expression": PROBE,
                                                       "returnByValue": True}, session=sess)
        found = json.loads(probe_result["result"]["value"])
        if extra is not None:
            found["probe"] = json.loads(pipe.call("Runtime.evaluate", {
                "expression": extra, "returnByValue": True}, session=sess)["result"]["value"])
        if screenshot is not None:
            import base64
            shot = pipe.call("Page.captureScreenshot", {"format": "png",
                                                        "captureBeyondViewport": True},
                             session=sess, timeout=timeout)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        found["errors"] = _errors(pipe.events)
        try:
            pipe.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError):
            pass
        return found
    finally:
        for fd in (from_parent, to_parent):
            os.close(fd)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000) -> None:
    """chromium --screenshot of a local page (for looking at it, not for asserting)."""
    exe = chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-shot-") as profile:
        subprocess.run([exe, *FLAGS[:-1], f"--window-size={width},{height}",
                        f"--user-data-dir={profile}", f"--screenshot={png}",
                        Path(page).resolve().as_uri()], capture_output=True, timeout=120,
                       check=True)
