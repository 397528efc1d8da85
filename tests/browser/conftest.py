"""Fixtures for the browser tier: Debian's Chromium driven by Selenium, screenshots kept.

Nothing here skips: without chromium and chromium-driver the tests fail, naming the packages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dashkit import Screenshots, missing_browser, start_browser
from selenium.webdriver.remote.webdriver import WebDriver


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(tmp_path: Path, downloads: Path) -> Iterator[WebDriver]:
    problem = missing_browser()
    if problem:
        pytest.fail(problem, pytrace=False)
    driver = start_browser(tmp_path / "profile", downloads)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Iterator[Screenshots]:
    shots = Screenshots(tmp_path / "screenshots")
    yield shots
    print(f"\nscreenshots: {shots.folder} ({len(shots.taken)} files)")
