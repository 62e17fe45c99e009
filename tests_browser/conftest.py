"""A JupyterLab server from this environment, and a headless Chromium to look at it.

The server runs on a free loopback port with a random token and settings of
its own (a temporary folder), so nothing reaches the user's JupyterLab
settings, workspaces or kernels:

- windowing off, so every cell of a long notebook is rendered (JupyterLab
  normally renders only the cells near the screen), for the checks and for
  full-page screenshots, and no blank space to scroll past the last cell;
- autosave off, so running a student notebook never writes it back;
- no news or update check.

The browser is the system's Chromium (Debian's `chromium`), never one that
Playwright downloads: set CHROMIUM=/path/to/chrome to use another.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright  # `make test-browser` installs it

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab: its address, token, and a small REST client."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def open_url(self, path: Path) -> str:
        """The address that opens a notebook in a fresh workspace (`reset`: no earlier tabs)."""
        return f"{self.url}/lab/tree/{path.relative_to(ROOT).as_posix()}?reset&token={self.token}"

    def shut_down_sessions(self) -> None:
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    for plugin, values in SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),   # no user config
        "JUPYTER_DATA_DIR": str(home / "data"),       # no user kernelspec named python3
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_PREFER_ENV_PATH": "1",
        "COURSE_DEVICE": "cpu",
    }
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={ROOT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root (usual in containers) unless told
    log = open(home / "server.log", "wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    running = Lab(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n"
                                   + (home / "server.log").read_text(errors="replace")[-3000:])
            try:
                running.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not answer within 90 s:\n"
                                       + (home / "server.log").read_text(errors="replace")[-3000:])
                time.sleep(0.5)
        yield running
    finally:
        try:
            if server.poll() is None:
                running.shut_down_sessions()
        except OSError:
            pass
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on the way out
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no Chromium found: `make test-browser` installs Debian's `chromium` "
                    "(or set CHROMIUM=/path/to/chrome)")
    return found


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
    lab.shut_down_sessions()
