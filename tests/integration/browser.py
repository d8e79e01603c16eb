"""A real headless Chromium (Debian's, installed by scripts/install-chromium.sh) driven over
the DevTools protocol with websocket-client: open a page, collect what its console and the
browser's log say (errors, CSP violations, exceptions, dialogs), evaluate expressions, click
with real mouse events, take a full-page screenshot."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import websocket

READY = re.compile(rb"DevTools listening on (ws://\S+)")


class Browser:
    def __init__(self, timeout: float = 90.0) -> None:  # a first start builds caches
        binary = shutil.which("chromium")
        assert binary, "chromium is not on PATH: run scripts/install-chromium.sh"
        self.profile = tempfile.mkdtemp(prefix="report-chromium-")
        args = [binary, "--headless=new", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
                "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "--window-size=1280,900", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        # stderr to a file, not a pipe: Chromium keeps writing to it, and a full pipe stalls it
        self.log = Path(self.profile) / "stderr.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        try:
            port = self._devtools_url().split(":")[2].split("/")[0]
            self.ws = websocket.create_connection(self._page_url(port), timeout=timeout,
                                                  suppress_origin=True)
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
        except BaseException:
            self._stop()
            raise

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if m := READY.search(self.log.read_bytes()):
                return m.group(1).decode()
            time.sleep(0.05)
        raise AssertionError("chromium did not start its DevTools server:\n"
                             + self.log.read_text(errors="replace"))

    def _page_url(self, port: str) -> str:
        import urllib.request

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise AssertionError("chromium opened no page")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = self._recv()
            if message.get("id") == ident:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})

    def _recv(self) -> dict[str, Any]:
        """The next message; events are kept, and a dialog (which would block the page) is
        dismissed at once."""
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
            if message["method"] == "Page.javascriptDialogOpening":
                self.ws.send(json.dumps({"id": next(self._ids),
                                         "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": False}}))
        return message

    def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = self._recv()
            if message.get("method") == method:
                return message
        raise AssertionError(f"no {method} within {self.timeout} s")

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        self.eval("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real left click (mouse events at the element's centre), as a person makes it."""
        box = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                      button="left", clickCount=1)
        self.eval("new Promise(r => setTimeout(r, 50))")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, browser log errors (CSP
        violations, failed loads) and dialogs (an injected alert) seen since the page
        opened."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in (
                    "error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error",
                                                                             "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry']['text']}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found

    def screenshot(self, path: Path, width: int = 1280, max_height: int = 6000) -> Path:
        """The whole page (up to ``max_height`` pixels) as a PNG."""
        self.eval("window.scrollTo(0, 0)")
        height = min(max_height, int(self.eval("document.documentElement.scrollHeight")))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.call("Emulation.clearDeviceMetricsOverride")
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
