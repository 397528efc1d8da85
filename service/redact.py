"""Secrets never reach a stored log: proxy credentials, tokens, keys and webhook secrets.

A build prints what it likes, and a package's own code may print its environment; the network
stages carry the proxy settings (with their credentials), and the service knows its own tokens.
`Redactor` replaces each known secret value in a line with `***` before the line is kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from service.config import Settings

MASK = "***"
MIN_SECRET_CHARS = 6
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_KEY)", re.I)
_PROXY_NAME = re.compile(r"^(https?|all|ftp)_proxy$", re.I)


def url_credentials(value: str) -> list[str]:
    """The user info of a URL (`user:password`, the password, both unquoted too)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    if parts.username and parts.password:
        found += [f"{parts.username}:{parts.password}"]
    return found


def environment_secrets(env: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    for name, value in env.items():
        if _PROXY_NAME.match(name) or "://" in value:
            found += url_credentials(value)
        if _SECRET_NAME.search(name):
            found.append(value)
    return found


def settings_secrets(settings: Settings) -> list[str]:
    found = [t.token.get_secret_value() for t in settings.auth.tokens]
    for secret in (
        settings.store.s3_secret_access_key,
        settings.webhooks.github_secret,
        settings.webhooks.gitlab_token,
    ):
        if secret is not None:
            found.append(secret.get_secret_value())
    if settings.broker_url:
        found += url_credentials(settings.broker_url)
    return found


class Redactor:
    """Masks every known secret (longest first, so no part of one survives)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in kept)) if kept else None

    @classmethod
    def for_service(cls, settings: Settings, env: Mapping[str, str] | None = None) -> Redactor:
        return cls(
            [*environment_secrets(os.environ if env is None else env), *settings_secrets(settings)]
        )

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text
