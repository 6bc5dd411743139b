"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver.

`make test` installs both (`apt-get install chromium chromium-driver`). Chromium gets a fresh
profile and the flags that keep it off the network: it must not reach out on its own (updates,
sync, field trials), and a page under test must need nothing but itself.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI containers has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
)


def binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver), or None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None
    )
    return (browser, driver) if browser and driver else None


class Browser:
    """One headless Chromium for the session; `driver` is a Selenium WebDriver."""

    def __init__(self, browser: str, driver: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="chunkscope-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        self.driver: Any = webdriver.Chrome(
            options=options, service=Service(executable_path=driver)
        )

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
