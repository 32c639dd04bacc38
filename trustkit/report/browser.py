"""Open a report in headless Chromium and check it renders: no console errors, no network, images decoded.

Talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4), so it needs
only a Chromium binary — Debian's ``chromium`` package — and no Python browser driver.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--remote-debugging-pipe", "--window-size=1280,2000"]
IMAGE_CHECK = """(() => {
  const imgs = Array.from(document.images);
  return JSON.stringify({
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 40)),
    title: document.title,
    headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent.trim()),
  });
})()"""


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What the browser saw: console errors, requests that left the file, images and broken ones."""

    console_errors: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    title: str = ""
    headings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.console_errors or self.network_requests or self.broken_images)


class _Pipe:
    """Minimal CDP client: NUL-terminated JSON messages over two pipes."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"no reply to {method}")

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("browser closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def drain(self, seconds: float) -> None:
        """Collect events for ``seconds`` (non-blocking reads)."""
        import select

        deadline = time.time() + seconds
        while time.time() < deadline:
            ready, _, _ = select.select([self.read_fd], [], [], max(0.0, deadline - time.time()))
            if not ready:
                break
            self.events.append(self._read())


def check_page(path: str | os.PathLike, browser: str | None = None, settle_seconds: float = 1.0) -> PageCheck:
    """Load ``path`` (an HTML file) in headless Chromium and report what a reader's browser would see."""
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install Debian's chromium package")
    url = Path(path).resolve().as_uri()
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="trustkit-chromium-")

    def wire_fds() -> None:  # the protocol pipe must sit on fds 3 (in) and 4 (out) in the child
        inbound, outbound = os.dup(to_browser_r), os.dup(from_browser_w)  # avoid clobbering if either is 3/4
        os.dup2(inbound, 3)
        os.dup2(outbound, 4)

    # close_fds runs after preexec_fn in the child, so fds 3 and 4 must be listed as kept
    process = subprocess.Popen([browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(3, 4),
                               preexec_fn=wire_fds)
    os.close(to_browser_r)
    os.close(from_browser_w)
    pipe = _Pipe(to_browser_w, from_browser_r)
    result = PageCheck()
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.drain(settle_seconds)
        page = json.loads(pipe.send("Runtime.evaluate", {"expression": IMAGE_CHECK, "returnByValue": True},
                                    session=session)["result"]["value"])
        pipe.drain(0.2)
        result.images, result.broken_images = page["images"], page["broken"]
        result.title, result.headings = page["title"], page["headings"]
        for event in pipe.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                description = details.get("exception", {}).get("description", "").split("\n")[0]
                result.console_errors.append(f"{details.get('text', 'exception')} {description}".strip())
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                result.console_errors.append(" ".join(str(a.get("value", "")) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                result.console_errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                request_url = params["request"]["url"]
                if not request_url.startswith(("data:", "file:", "about:")):
                    result.network_requests.append(request_url)
    finally:
        try:
            pipe.send("Browser.close", timeout=5)
        except Exception:  # the browser may already be gone; closing is best effort
            pass
        process.wait(timeout=10) if process.poll() is None else None
        if process.poll() is None:
            process.kill()
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)
    return result
