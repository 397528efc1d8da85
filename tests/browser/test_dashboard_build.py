"""The dashboard in a real browser against a real `wheelwright serve` building in Docker.

A build submitted through the API is watched from its page: the stages appear, the log grows
while it runs (without the page reloading), it finishes with the wheel's link, and following the
link downloads the wheel's bytes. The environment page's uv configuration, pasted as it is into a
fresh project, installs that wheel with the real uv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashkit import (
    Screenshots,
    Serve,
    click_css,
    fixture_sdist,
    sha256_of,
    text_of,
    wait_for_file,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.browser, pytest.mark.docker]


@pytest.fixture
def serve(tmp_path: Path, cpu_image: str) -> Iterator[Serve]:
    server = Serve(tmp_path / "home")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _log_lines(browser: WebDriver) -> int:
    count: int = browser.execute_script("return document.querySelectorAll('#log span').length")
    return count


def _state(browser: WebDriver) -> str:
    return text_of(browser, "state")


def test_watch_a_build_live_then_download_and_install_its_wheel(
    serve: Serve, browser: WebDriver, screenshots: Screenshots, downloads: Path, tmp_path: Path
) -> None:
    archive = fixture_sdist("chatty", tmp_path / "src", "1.0.0", {"talk.txt": "25"})
    answer = serve.upload(archive)
    build_id = answer["build"]["build"]["id"]

    browser.get(f"{serve.url}/")  # the service's root leads to the builds
    assert browser.current_url.rstrip("/").endswith("/ui")
    row = f"#rows a[href$='/ui/builds/{build_id}']"
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, row))
    assert text_of(browser, "rows").count("succeeded") == 0
    browser.execute_script("window.__samePage = true")
    listing = browser.current_window_handle
    browser.switch_to.new_window("tab")  # the list stays open in its own tab meanwhile
    browser.get(f"{serve.url}/ui/")
    click_css(browser, row)  # the list updates itself while the build runs
    # mark the build's page, not the list that the click leaves
    WebDriverWait(browser, 10).until(lambda b: b.current_url.endswith(f"/ui/builds/{build_id}"))
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "state"))
    browser.execute_script("window.__samePage = true")

    # the stages appear while the build runs: fetch done, later ones follow
    WebDriverWait(browser, 240, poll_frequency=0.5).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "g.stage-running[data-stage='build']")
    )
    assert _state(browser) == "running"
    assert browser.find_elements(By.CSS_SELECTOR, "g.stage-ok[data-stage='fetch']")
    assert browser.find_elements(By.CSS_SELECTOR, "g.stage-ok[data-stage='build_deps']")
    assert browser.find_elements(By.CSS_SELECTOR, "g.stage-pending[data-stage='verify']")
    # the log grows while the build runs, on the same page (no reload)
    WebDriverWait(browser, 60).until(lambda b: "compiling unit 3" in text_of(b, "log"))
    first = _log_lines(browser)
    screenshots.take(browser, "build-running")
    WebDriverWait(browser, 60).until(lambda b: _log_lines(b) >= first + 8)
    assert _state(browser) == "running"
    assert browser.execute_script("return window.__samePage === true")
    log_text = text_of(browser, "log")
    assert "\x1b" not in log_text and "[32m" not in log_text  # ANSI colour stripped
    assert "<kernel_3.cu>" in log_text  # and markup shown as text

    # it finishes: the page reloads itself with the outcome, the wheel and the stored log
    WebDriverWait(browser, 240, poll_frequency=0.5).until(
        lambda b: (
            b.execute_script("return window.__samePage !== true")
            and b.find_elements(By.ID, "wheel-link")
        )
    )
    assert _state(browser) == "succeeded"
    assert not browser.find_elements(By.ID, "cancel-form")
    # the log moves to the store just after the state changes: until then the page shows its tail
    WebDriverWait(browser, 20).until(_stored_log_shown)
    assert text_of(browser, "log-pages").startswith("Bytes 0")
    for stage in ("fetch", "runtime", "build_deps", "build", "verify", "publish"):
        assert browser.find_elements(By.CSS_SELECTOR, f"g.stage-ok[data-stage='{stage}']"), stage
    assert "net off" in browser.find_element(By.CSS_SELECTOR, "g[data-stage='build']").text
    assert "compiling unit 3" in text_of(browser, "log")  # the stored log
    screenshots.take(browser, "build")

    # the list in the other tab followed the build to its end, without reloading
    watching = browser.current_window_handle
    browser.switch_to.window(listing)
    WebDriverWait(browser, 20).until(lambda b: "succeeded" in text_of(b, "rows"))
    assert browser.execute_script("return window.__samePage === true")
    assert "miss" in text_of(browser, "rows")
    browser.close()
    browser.switch_to.window(watching)

    # following the link downloads the wheel's bytes, as the page's sha256 says
    link = browser.find_element(By.ID, "wheel-link")
    filename = link.text
    assert filename.startswith("chatty-1.0.0-") and filename.endswith(".whl")
    shown_sha = browser.find_element(By.ID, "wheel-sha256").text
    link.click()
    wheel = wait_for_file(downloads, ".whl")
    assert wheel.name == filename
    assert sha256_of(wheel) == shown_sha

    # provenance: source digest, image, who asked
    browser.find_element(By.LINK_TEXT, "provenance").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "requested-by"))
    assert browser.find_element(By.ID, "source-sha256").text == sha256_of(archive)
    assert "api" in browser.find_element(By.ID, "requested-by").text
    assert "image_id" in browser.page_source
    screenshots.take(browser, "provenance")

    # the environment page: what to paste, used as it is by uv in a fresh project
    environment = answer["build"]["build"]["environment"]
    browser.get(f"{serve.url}/ui/environments/{environment}")
    config = browser.find_element(By.ID, "uv-config").text
    assert 'chatty = { index = "wheelwright" }' in config
    browser.find_element(By.CSS_SELECTOR, "button[data-copy='uv-config']").click()
    WebDriverWait(browser, 5).until(lambda b: b.find_element(By.CSS_SELECTOR, ".copy-status").text)
    screenshots.take(browser, "environment")
    _install_with_uv(config, tmp_path / "consumer")

    browser.get(f"{serve.url}/ui/environments")
    screenshots.take(browser, "environments", dark=False)
    browser.get(f"{serve.url}/ui/?state=succeeded")
    rows = browser.find_elements(By.CSS_SELECTOR, "#rows tr")
    assert len(rows) == 1 and "chatty" in rows[0].text and "miss" in rows[0].text
    browser.get(f"{serve.url}/ui/?state=failed")
    assert "No builds match" in browser.find_element(By.ID, "rows").text
    browser.get(f"{serve.url}/ui/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # keyboard: the first stop skips to the content
    assert browser.switch_to.active_element.text == "Skip to content"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "f-state"
    screenshots.take(browser, "builds")
    browser.get(f"{serve.url}/ui/overview")
    assert browser.find_element(By.ID, "hit-rate").text == "0%"
    screenshots.take(browser, "overview")
    assert all(path.stat().st_size > 1000 for path in screenshots.taken)


def _stored_log_shown(browser: WebDriver) -> bool:
    if text_of(browser, "log-pages"):
        return True
    browser.refresh()
    return False


def _install_with_uv(pasted: str, project: Path) -> None:
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["chatty"]\n\n' + pasted
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV"))}
    env |= {
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(project / "uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
    }
    uv = str(Path(sys.executable).with_name("uv"))
    synced = subprocess.run(
        [uv, "sync"], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert synced.returncode == 0, synced.stderr
    imported = subprocess.run(
        [str(project / ".venv/bin/python"), "-c", "import chatty; print(chatty.SPOKE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.stdout.strip() == "True", imported.stderr
