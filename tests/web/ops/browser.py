"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, and a
sink endpoint that can be broken and fixed while the test runs."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from playwright.sync_api import Page

CHROMIUM = os.environ.get("RELAY_TEST_CHROMIUM", "/usr/bin/chromium")


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A fresh page in a headless Chromium started for the test (root needs --no-sandbox)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


class BreakableEndpoint:
    """A WSGI app in front of a real receiver: while ``broken`` it answers 500 and
    notes the ``webhook-id`` it refused; fixed, it passes every request through."""

    def __init__(self, receiver: WSGIApplication) -> None:
        self.receiver = receiver
        self.broken = True
        self._lock = threading.Lock()
        self._refused: list[str] = []

    def refused(self) -> list[str]:
        with self._lock:
            return list(self._refused)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self.broken:
            return self.receiver(environ, start_response)
        with self._lock:
            self._refused.append(str(environ.get("HTTP_WEBHOOK_ID", "")))
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"down for maintenance"]


def text_of(page: Page, selector: str) -> str:
    return str(page.locator(selector).inner_text())
