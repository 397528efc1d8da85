"""The dashboard with tokens configured, in a real browser against a real `wheelwright serve`.

No page without a token; a read token sees builds but cannot cancel; a form posted without this
browser's CSRF token is refused; a build token cancels; no secret is ever on a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashkit import Screenshots, Serve, fixture_sdist, text_of
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.browser, pytest.mark.docker]
READ_TOKEN = "read-token-3c1f9a0d2b7e4f61"
BUILD_TOKEN = "build-token-8e2d7c4b1a9f0e35"
CONFIG = f"""
[auth]
anonymous_index = false
tokens = [
  {{ name = "alice-read", token = "{READ_TOKEN}", scopes = ["read"] }},
  {{ name = "ci-build", token = "{BUILD_TOKEN}", scopes = ["build"] }},
]
"""
PAGES = ("/ui/", "/ui/environments", "/ui/overview")


@pytest.fixture
def serve(tmp_path: Path, cpu_image: str) -> Iterator[Serve]:
    server = Serve(tmp_path / "home", config=CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _login(browser: WebDriver, serve: Serve, token: str, then: str) -> None:
    browser.get(f"{serve.url}{then}")
    assert "/ui/login" in browser.current_url  # no page without a token
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, 10).until(lambda b: "/ui/login" not in b.current_url)


def _logout(browser: WebDriver) -> None:
    browser.find_element(By.CSS_SELECTOR, "form.who button").click()
    WebDriverWait(browser, 10).until(lambda b: "/ui/login" in b.current_url)


def _post_from_page(browser: WebDriver, path: str, csrf: str | None) -> int:
    """POST a form from the page's own origin, as a hand-made form would (status code back)."""
    status: int = browser.execute_async_script(
        """
        const [path, csrf, done] = arguments;
        const body = new URLSearchParams();
        if (csrf !== null) body.set("csrf_token", csrf);
        fetch(path, {method: "POST", body, credentials: "same-origin", redirect: "manual"})
          .then(r => done(r.status), () => done(-1));
        """,
        path,
        csrf,
    )
    return status


def test_tokens_guard_every_page_and_every_change(
    serve: Serve, browser: WebDriver, screenshots: Screenshots, tmp_path: Path
) -> None:
    sources: list[str] = []
    for path in (*PAGES, "/ui/builds/anything", "/ui/builds/anything/live"):
        answer = httpx.get(f"{serve.url}{path}", follow_redirects=False, timeout=10)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=")
    browser.get(f"{serve.url}/ui/")
    assert "/ui/login" in browser.current_url
    sources.append(browser.page_source)
    screenshots.take(browser, "login")
    browser.find_element(By.ID, "token").send_keys("not-a-token")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    # the click posts the form: wait for the answer's page, not the page that posted it
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "login-error"))
    assert "not valid" in browser.find_element(By.ID, "login-error").text

    archive = fixture_sdist("sleepy", tmp_path / "src", "1.0.0", {"sleep.txt": "300"})
    build_id = serve.upload(archive, token=BUILD_TOKEN)["build"]["build"]["id"]
    page = f"/ui/builds/{build_id}"

    # a read token: sees the build, has no cancel button, and a hand-made cancel is refused
    _login(browser, serve, READ_TOKEN, page)
    assert browser.current_url.endswith(page)
    assert "alice-read" in browser.find_element(By.CSS_SELECTOR, "form.who").text
    assert "ci-build" in text_of(browser, "summary")  # who asked
    assert not browser.find_elements(By.ID, "cancel-form")
    sources.append(browser.page_source)
    csrf = browser.find_element(By.CSS_SELECTOR, "form.who input[name=csrf_token]")
    assert _post_from_page(browser, f"{page}/cancel", csrf.get_attribute("value")) == 403
    for path in PAGES:
        browser.get(f"{serve.url}{path}")
        assert "/ui/login" not in browser.current_url
        sources.append(browser.page_source)
    _logout(browser)
    browser.get(f"{serve.url}{page}")
    assert "/ui/login" in browser.current_url  # the session is gone

    # a build token: the cancel form; without its CSRF token the post is refused
    _login(browser, serve, BUILD_TOKEN, page)
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "cancel-form"))
    sources.append(browser.page_source)
    screenshots.take(browser, "build-signed-in", phone=False, dark=False)
    assert _post_from_page(browser, f"{page}/cancel", None) == 403
    assert _post_from_page(browser, f"{page}/cancel", "forged" * 8) == 403
    browser.execute_script("document.querySelector('#cancel-form input[name=csrf_token]').remove()")
    browser.find_element(By.CSS_SELECTOR, "#cancel-form button").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "p.error-box"))
    assert "CSRF" in browser.find_element(By.CSS_SELECTOR, "p.error-box").text
    assert httpx.get(
        f"{serve.url}/v1/builds/{build_id}",
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
        timeout=10,
    ).json()["build"]["state"] in ("queued", "running")

    browser.get(f"{serve.url}{page}")
    browser.find_element(By.CSS_SELECTOR, "#cancel-form button").click()
    WebDriverWait(browser, 120, poll_frequency=0.5).until(
        lambda b: text_of(b, "state") == "cancelled"
    )
    sources.append(browser.page_source)
    assert not any(READ_TOKEN in s or BUILD_TOKEN in s for s in sources)
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["ww_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"
    assert BUILD_TOKEN not in session["value"]
    assert cookies["ww_csrf"]["sameSite"] == "Strict" and cookies["ww_csrf"]["httpOnly"]
