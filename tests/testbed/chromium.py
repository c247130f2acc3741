# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Debian's headless Chromium, driven through the DevTools protocol over a pipe (no port, no network).

One browser per ``with Chromium() as browser:``; each :meth:`Chromium.load` opens a page in a new tab,
waits for its load event and returns a :class:`Page` holding every console message, log entry and
uncaught exception the page produced, the means to evaluate an expression in it and to take a
screenshot. A fresh profile folder every time; ``--no-sandbox`` only when run as root (Chromium
refuses its sandbox there).

    python -m ansible_collections.corebackup.backup.tests.testbed.chromium report.html shot.png [width]

writes a full-page screenshot of a file (docs/report.png is made this way).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t


class BrowserError(RuntimeError):
    pass


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: its DevTools session and what it reported."""

    def __init__(self, browser: "Chromium", session: str):
        self.browser = browser
        self.session = session
        self.console: list[dict] = []  # {level, text, source}

    def problems(self, levels: tuple = ("error",)) -> list[dict]:
        return [entry for entry in self.console if entry["level"] in levels]

    def evaluate(self, expression: str) -> t.Any:
        """The JSON value of ``expression`` in the page (run by the protocol, not by the page's own scripts)."""
        result = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                   session=self.session)
        if "exceptionDetails" in result:
            raise BrowserError("evaluating %s failed: %s" % (expression[:200], result["exceptionDetails"]))
        return result["result"].get("value")

    def screenshot(self, path: str, width: int = 1280) -> None:
        """The whole page at ``width`` CSS pixels, as PNG."""
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}
        self.browser.call("Emulation.setDeviceMetricsOverride", metrics, session=self.session)
        metrics["height"] = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.browser.call("Emulation.setDeviceMetricsOverride", metrics, session=self.session)
        shot = self.browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                 session=self.session)
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(shot["data"]))


class Chromium:
    """A headless Chromium for the length of a ``with`` block."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.profile = ""
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> "Chromium":
        binary = chromium_path()
        if binary is None:
            raise BrowserError("chromium is not installed (Debian: apt-get install chromium; make system-deps)")
        self.profile = tempfile.mkdtemp(prefix="corebackup-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        argv = [binary, "--headless", "--disable-gpu", "--user-data-dir=" + self.profile, "--remote-debugging-pipe",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
                "--hide-scrollbars", "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")

        def pipes_as_3_and_4() -> None:  # the DevTools pipe: the browser reads fd 3 and writes fd 4
            # Above 9 first: a pipe already at 3 or 4 would keep its close-on-exec flag through dup2 onto itself.
            reading, writing = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        with open(os.path.join(self.profile, "chromium.log"), "wb") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,  # pylint: disable=consider-using-with
                                            close_fds=False, preexec_fn=pipes_as_3_and_4, start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            self.call("Browser.getVersion")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: t.Any) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.call("Browser.close", timeout=10)
                self.process.wait(timeout=10)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- the protocol ---------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not answer within %.0f s" % self.timeout)
            ready, _w, _x = select.select([self._from_browser], [], [], 0.5)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError("chromium closed its DevTools pipe (log: %s)" % self.log_tail())
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message.decode("utf-8"))

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.profile, "chromium.log"), encoding="utf-8", errors="replace") as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def _dispatch(self, message: dict) -> None:
        page = self._pages.get(message.get("sessionId", ""))
        method, params = message.get("method"), message.get("params") or {}
        if page is None:
            self._events.append(message)
            return
        if method == "Runtime.consoleAPICalled":
            level = {"warning": "warning", "error": "error", "assert": "error"}.get(params.get("type"), "info")
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args") or [])
            page.console.append({"level": level, "text": text, "source": "console"})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            page.console.append({"level": "error", "source": "exception",
                                 "text": (details.get("exception") or {}).get("description") or details.get("text", "")})
        elif method == "Log.entryAdded":
            entry = params.get("entry") or {}
            page.console.append({"level": entry.get("level", "info"), "text": entry.get("text", ""),
                                 "source": entry.get("source", "")})
        else:
            self._events.append(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None) -> dict:
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == message["id"]:
                if "error" in answer:
                    raise BrowserError("%s: %s" % (method, answer["error"]))
                return answer.get("result") or {}
            self._dispatch(answer)

    def wait_for(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(index)
            self._dispatch(self._receive(deadline))

    def load(self, url: str) -> Page:
        """``url`` in a new tab, after its load event; its console is recorded from before the first byte."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            self.call(domain + ".enable", session=session)
        navigated = self.call("Page.navigate", {"url": url}, session=session)
        if navigated.get("errorText"):
            raise BrowserError("chromium could not open %s: %s" % (url, navigated["errorText"]))
        self.wait_for("Page.loadEventFired", session)
        self.call("Runtime.evaluate", {"expression": "1"}, session=session)  # flush what the load logged
        return page


def main(argv: list[str]) -> int:
    source, target = argv[0], argv[1]
    width = int(argv[2]) if len(argv) > 2 else 1280
    with Chromium() as browser:
        page = browser.load("file://" + os.path.abspath(source))
        page.screenshot(target, width)
        for entry in page.console:
            print("%s: %s" % (entry["level"], entry["text"]))
        return 1 if page.problems() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
