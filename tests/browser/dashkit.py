"""A real `wheelwright serve` and a real Chromium for the dashboard tests.

Chromium is Debian's (`chromium`, `chromium-driver`), started headless with a fresh profile and
everything that would reach the network turned off; nothing is downloaded. A missing browser
fails the tests with the command that installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

FIXTURES = Path(__file__).parent.parent / "fixtures"
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
DESKTOP = (1280, 900)
BACKGROUND = {"light": "rgb(255, 255, 255)", "dark": "rgb(15, 19, 24)"}  # dashboard.css
PHONE = (390, 844)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return (
                f"{path} is missing: install Debian's chromium and chromium-driver "
                "(bash scripts/host-services.sh does)"
            )
    return None


def start_browser(profile: Path, downloads: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


@dataclass
class Screenshots:
    """PNGs of each page at desktop and phone width, light and dark, under the test's tmp."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def take(
        self,
        driver: WebDriver,
        name: str,
        *,
        phone: bool = True,
        dark: bool = True,
        anchor: str | None = None,
    ) -> None:
        """`anchor`: the id of an element scrolled to the top of each shot (else the page's top
        as the browser left it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shots = [("desktop", DESKTOP, "light")]
        if phone:
            shots.append(("phone", PHONE, "light"))
        if dark:
            shots.append(("desktop-dark", DESKTOP, "dark"))
        for label, (width, height), scheme in shots:
            driver.set_window_size(width, height)
            driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            )
            if anchor is not None:
                driver.execute_script(
                    "document.getElementById(arguments[0]).scrollIntoView()", anchor
                )
            time.sleep(0.2)
            path = self.folder / f"{name}-{label}.png"
            assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
            self.taken.append(path)
            fits = "return document.documentElement.scrollWidth <= window.innerWidth"
            assert driver.execute_script(fits), f"{name} is wider than {width} px"
            background = driver.execute_script(
                "return getComputedStyle(document.body).backgroundColor"
            )
            assert background == BACKGROUND[scheme], f"{name}: {background} in {scheme} mode"
        driver.set_window_size(*DESKTOP)
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
        )


@dataclass
class Serve:
    """`wheelwright serve` (no broker: builds run in the process) on a free loopback port."""

    home: Path
    config: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "WHEELWRIGHT_HOME": str(self.home)}
        env.pop("WHEELWRIGHT_BROKER_URL", None)
        if self.config is not None:
            path = self.home / "wheelwright.toml"
            path.write_text(self.config)
            env["WHEELWRIGHT_CONFIG"] = str(path)
        with (self.home / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "wheelwright"), "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"wheelwright serve did not start:\n{self.log()}")

    def log(self) -> str:
        return (self.home / "serve.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def upload(self, archive: Path, token: str | None = None, **fields: Any) -> dict[str, Any]:
        import json

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with archive.open("rb") as fh:
            response = httpx.post(
                f"{self.url}/v1/builds",
                files={"file": (archive.name, fh)},
                data={"options": json.dumps(fields)},
                headers=headers,
                timeout=60,
            )
        assert response.status_code == 202, response.text
        answer: dict[str, Any] = response.json()
        return answer


def fixture_sdist(fixture: str, dest: Path, version: str, settings: dict[str, str]) -> Path:
    """An sdist of `tests/fixtures/<fixture>` with its knobs written into files."""
    folder = dest / f"{fixture}-{version}"
    folder.mkdir(parents=True)
    for source in (FIXTURES / fixture).iterdir():
        shutil.copy(source, folder / source.name)
    for name, value in {**settings, "version.txt": version}.items():
        (folder / name).write_text(value)
    archive = dest / f"{fixture}-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def text_of(driver: WebDriver, element_id: str) -> str:
    """An element's text read in the page (live updates replace elements: no stale handles)."""
    text: str = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
        element_id,
    )
    return text.strip()


def text_at(driver: WebDriver, css: str, index: int = 0) -> str:
    """The text of the `index`th element matching `css`, read in the page in one step (a live
    update may replace the element between finding it and reading it); '' if there is none."""
    text: str = driver.execute_script(
        "const e = document.querySelectorAll(arguments[0])[arguments[1]];"
        " return e ? e.innerText : '';",
        css,
        index,
    )
    return text.strip()


def rows_at(driver: WebDriver, css: str) -> list[dict[str, Any]]:
    """Each row matching `css`, read in the page in one step: its first link's href, its text and
    its cells' texts (a live update may replace the rows between finding and reading them)."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """
        return Array.from(document.querySelectorAll(arguments[0]), (row) => {
          const link = row.querySelector("a");
          return {
            href: link ? link.href : null,
            text: row.innerText.trim(),
            cells: Array.from(row.querySelectorAll("td"), (cell) => cell.innerText.trim()),
          };
        });
        """,
        css,
    )
    return rows


def click_css(driver: WebDriver, css: str, timeout_s: float = 10) -> None:
    """Click the element matching `css`, finding it again if a live update replaced it."""
    WebDriverWait(driver, timeout_s, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, css).click() is None
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_file(folder: Path, suffix: str, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(f"*{suffix}") if p.stat().st_size > 0]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} file arrived in {folder}: {list(folder.iterdir())}")
