"""Browser tests: Debian's Chromium driven by Playwright against a live server on the test database.

Chromium comes from the system (``/usr/bin/chromium``; ``.ci/run`` installs Debian's package):
Playwright's own browser download is not used. With ``CI=true`` a missing browser fails the run;
elsewhere these tests are skipped with the reason shown.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ci_requires_services

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium is not at {CHROMIUM} (Debian: apt-get install chromium)."
        if ci_requires_services():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own database work (and
    # the live server's, in its thread) is synchronous code that Django would otherwise refuse.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page_for(browser: Any, live_server: Any) -> Iterator[Any]:
    """``page_for(username)``: a page signed in through the sign-in form (``None``: signed out),
    1366 px wide. axe-core is injected into pages, so the content policy is bypassed for it."""
    contexts = []

    def open_page(username: str | None, *, width: int = 1366) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        if username is not None:
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("#id_username", username)
            page.fill("#id_password", "demo-password")
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, one line each (rule, where)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
