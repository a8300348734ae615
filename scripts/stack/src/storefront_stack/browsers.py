"""Debian's Chromium for browser tests (Playwright drives it; no browser download)."""

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["CHROMIUM_ARGS", "BrowserMissing", "ensure_chromium"]

# Headless on a closed network: no sandbox as root, no background calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserMissing(RuntimeError):
    """Chromium is not installed and could not be installed here."""


def ensure_chromium() -> str:
    """The chromium binary; installed from Debian's package when missing and we are root."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise BrowserMissing("Chromium is not installed: install Debian's `chromium` package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=True, env=env)
    subprocess.run(
        [apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True, env=env
    )
    if not Path("/usr/bin/chromium").exists():
        raise BrowserMissing("installing chromium did not provide /usr/bin/chromium")
    return "/usr/bin/chromium"
