"""Project builds on the dashboard, in a real browser against a real `wheelwright serve`.

The states are saved into the service's own store by `ServedProjectBuild.save()` (the code path a
running project build writes through), so no Docker is needed: the list and each page show the
packages, their states, a failure's cause and the uv configuration; a running project build's
page and the list follow it without a reload; a lost one shows as lost; markup in a package name,
an error or an upload's name is shown as text; an odd id is the 404 page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashkit import Screenshots, Serve, click_css, rows_at, text_at, text_of
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from service.config import load_settings
from service.store import LocalStore
from tests.projectstates import SavedProjectBuild, node, parts_of

pytestmark = [pytest.mark.browser]
CONFIG = '[environments.cpu-plain]\ntarget = { kind = "cpu", python = "3.11" }\n'
#: would set window.__xss if any of it ran as markup
HOSTILE_NAME = "<img src=x onerror=\"window.__xss='name'\">"
HOSTILE_ERROR = "error: <script>window.__xss='error'</script> gcc exited with 1"
UV_CONFIG = (
    '[[tool.uv.index]]\nname = "wheelwright"\nurl = "{index}"\nexplicit = true\n\n'
    '[tool.uv.sources]\nalpha = {{ index = "wheelwright" }}\nbeta = {{ index = "wheelwright" }}\n'
)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path / "home", config=CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Saved:
    """Project builds saved into the running service's store."""

    def __init__(self, serve: Serve, work: Path) -> None:
        settings = load_settings(home=serve.home)
        self.parts = parts_of(settings, LocalStore(settings.store_dir), serve.url)
        self.index = f"{serve.url}/simple/cpu-plain/"
        self.work = work

    def failed(self) -> SavedProjectBuild:
        saved = SavedProjectBuild(
            self.parts,
            self.work / "failed",
            {"kind": "upload", "name": f"{HOSTILE_NAME}.tar.gz"},
            state="running",
            input="pyproject.toml",
            index_url=self.index,
            created_at=time.time() - 305,
        )
        saved.update(
            packages=[
                node("alpha", "1.0", 1, "built", build_id="0123abcd0123abcd", seconds=241),
                node(
                    HOSTILE_NAME,
                    "2.0",
                    2,
                    "failed",
                    build_id="fedc0123fedc0123",
                    seconds=9.5,
                    error=HOSTILE_ERROR,
                ),
                node(
                    "gamma",
                    "0.3",
                    3,
                    "not built",
                    note=f"needs {HOSTILE_NAME}, which was not built",
                ),
            ],
            state="failed",
            failed=[HOSTILE_NAME, "gamma"],
            error=f"not built: {HOSTILE_NAME}, gamma",
            uv_config=UV_CONFIG.format(index=self.index).replace("beta = ", "# beta = "),
            finished_at=time.time(),
        )
        return saved

    def running(self, name: str) -> SavedProjectBuild:
        saved = SavedProjectBuild(
            self.parts,
            self.work / name,
            {
                "kind": "git",
                "url": f"https://git.example/acme/{name}.git",
                "ref": "main",
                "commit": "c0ffee" * 6 + "abcd",
            },
            state="running",
            input="pyproject.toml",
            index_url=self.index,
            created_at=time.time() - 40,
        )
        saved.update(
            packages=[
                node(
                    "alpha",
                    "1.0",
                    1,
                    "running",
                    stage="build",
                    build_id="1111aaaa2222bbbb",
                    seconds=3,
                ),
                node("beta", "2.0", 2, "waiting"),
            ]
        )
        return saved


def _xss(browser: WebDriver) -> object:
    return browser.execute_script("return window.__xss === undefined ? null : window.__xss")


def _same_page(browser: WebDriver) -> bool:
    same: bool = browser.execute_script("return window.__samePage === true")
    return same


def test_project_builds_listed_shown_and_followed_live(
    serve: Serve, browser: WebDriver, screenshots: Screenshots, tmp_path: Path
) -> None:
    saved = Saved(serve, tmp_path / "work")
    failed = saved.failed()
    running = saved.running("app")
    lost = saved.running("gone")
    lost.lose()

    # the navigation leads to the list: newest first, with state, source, counts, times
    browser.get(f"{serve.url}/ui/")
    browser.find_element(By.LINK_TEXT, "Projects").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#rows tr"))
    rows = rows_at(browser, "#rows tr")  # the running row makes the list update itself
    assert [r["href"] for r in rows] == [
        f"{serve.url}/ui/projects/{b.id}" for b in (lost, running, failed)
    ]
    lost_row, running_row, failed_row = (r["text"] for r in rows)
    assert "lost" in lost_row and "https://git.example/acme/gone.git @ main" in lost_row
    assert "running" in running_row and "(c0ffeec0ffee)" in running_row
    assert f"{HOSTILE_NAME}.tar.gz" in failed_row  # the upload's name, as text
    assert "failed" in failed_row and "cpu-plain" in failed_row
    assert rows[2]["cells"][4:6] == ["3", "2"]
    assert "UTC" in failed_row
    assert _xss(browser) is None
    screenshots.take(browser, "projects")

    # the failed one: its graph, each failure's cause, the index, the uv configuration
    click_css(browser, f"#rows a[href$='/ui/projects/{failed.id}']")
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "packages"))
    assert text_of(browser, "state") == "failed"
    assert text_of(browser, "source") == f"{HOSTILE_NAME}.tar.gz pyproject.toml"
    assert text_of(browser, "index-url") == saved.index
    assert f"not built: {HOSTILE_NAME}, gamma" in text_of(browser, "error")
    failures = text_of(browser, "failures")
    assert f"{HOSTILE_NAME} 2.0 (failed): {HOSTILE_ERROR}" in failures
    assert f"gamma 0.3 (not built): needs {HOSTILE_NAME}, which was not built" in failures
    table = [row["cells"] for row in rows_at(browser, "#package-rows tr")]
    assert [row[:6] for row in table] == [
        ["alpha", "1.0", "1", "built", "", "4m 01s"],
        [HOSTILE_NAME, "2.0", "2", "failed", "", "9.5s"],
        ["gamma", "0.3", "3", "not built", "", ""],
    ]
    build_link = browser.find_element(
        By.CSS_SELECTOR, "#package-rows a[href$='/ui/builds/0123abcd0123abcd']"
    )
    assert build_link.text == "0123abcd0123"
    config = browser.find_element(By.ID, "uv-config").text
    assert f'url = "{saved.index}"' in config and 'alpha = { index = "wheelwright" }' in config
    browser.find_element(By.CSS_SELECTOR, "button[data-copy='uv-config']").click()
    WebDriverWait(browser, 5).until(lambda b: b.find_element(By.CSS_SELECTOR, ".copy-status").text)
    assert _xss(browser) is None
    assert text_of(browser, "duration") == "5m 05s"
    browser.execute_script("window.scrollTo(0, 0)")
    screenshots.take(browser, "project-failed")
    screenshots.take(browser, "project-failed-packages", anchor="packages-h")

    # the lost one shows as lost, with the API's words
    browser.get(f"{serve.url}/ui/projects/{lost.id}")
    assert text_of(browser, "state") == "lost"
    assert "the service process running it stopped" in text_of(browser, "error")

    # the running one: its page follows it without a reload, then shows the end
    browser.get(f"{serve.url}/ui/projects/{running.id}")
    browser.execute_script("window.__samePage = true")
    assert text_of(browser, "state") == "running"
    assert "shown when the project build ends" in text_of(browser, "main")
    screenshots.take(browser, "project-running", dark=False)
    running.update(
        packages=[
            node("alpha", "1.0", 1, "built", build_id="1111aaaa2222bbbb", seconds=30),
            node(
                "beta",
                "2.0",
                2,
                "running",
                stage="build_deps",
                build_id="3333cccc4444dddd",
                seconds=2,
            ),
        ]
    )
    beta = "#package-rows tr[data-package='beta']"
    WebDriverWait(browser, 15, poll_frequency=0.3).until(lambda b: "build_deps" in text_at(b, beta))
    assert "built" in text_at(browser, "#package-rows tr[data-package='alpha']")
    assert _same_page(browser), "the page reloaded instead of updating itself"

    # the list, open in another tab, follows it too
    watching = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"{serve.url}/ui/projects")
    browser.execute_script("window.__samePage = true")
    listing = browser.current_window_handle
    browser.switch_to.window(watching)

    running.update(
        state="succeeded",
        packages=[
            node("alpha", "1.0", 1, "built", build_id="1111aaaa2222bbbb", seconds=30),
            node("beta", "2.0", 2, "built", build_id="3333cccc4444dddd", seconds=12),
        ],
        uv_config=UV_CONFIG.format(index=saved.index),
        finished_at=time.time(),
    )
    WebDriverWait(browser, 15, poll_frequency=0.3).until(
        lambda b: not _same_page(b) and b.find_elements(By.ID, "uv-config")
    )
    assert text_of(browser, "state") == "succeeded"
    assert 'beta = { index = "wheelwright" }' in text_of(browser, "uv-config")
    assert browser.find_element(By.CSS_SELECTOR, "article.project").get_attribute("data-live") == ""
    screenshots.take(browser, "project-succeeded")
    browser.switch_to.window(listing)
    WebDriverWait(browser, 15).until(lambda b: "succeeded" in text_at(b, "#rows tr", 1))
    assert _same_page(browser)
    browser.close()
    browser.switch_to.window(watching)

    # an id no project build has, odd characters included: the 404 page, naming it
    odd_ids = {
        "0" * 32: "0" * 32,
        "<script>window.__xss='id'</script>": "<script>window.__xss='id'</script>",
        "..%2F..%2Fetc%2Fpasswd": "../../etc/passwd",
    }
    for odd, named in odd_ids.items():
        browser.get(f"{serve.url}/ui/projects/{odd}")
        assert browser.find_element(By.TAG_NAME, "h1").text == "404"
        assert f"no project build {named!r}" in text_of(browser, "main")
        assert _xss(browser) is None
    screenshots.take(browser, "project-404", phone=False, dark=False)
    assert all(path.stat().st_size > 1000 for path in screenshots.taken)
