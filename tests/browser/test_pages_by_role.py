"""Every page, as each demo role sees it, opens in a real browser and has no serious or critical
accessibility violation (axe-core)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from django.core.management import call_command

from tests.browser.conftest import serious_violations

pytestmark = pytest.mark.django_db(transaction=True)

OUTCOMES = ("reflective-functioning", "postnatal-depression", "infant-social-emotional", "secure-attachment")
PAGES = ["/", "/datasets/", "/upload/", "/tokens/", "/account/", "/account/password/"] + [
    f"/outcomes/{code}/" for code in OUTCOMES
]
ROLES = {
    "steering": [*PAGES, "/audit/"],
    "dm-north": PAGES,
    "member-north": PAGES,
    "admin": [*PAGES, "/audit/"],
}


@pytest.fixture
def demo(tmp_media: Any) -> None:
    with open(os.devnull, "w") as out:
        call_command("load_demo", stdout=out)


@pytest.mark.parametrize("role", list(ROLES))
def test_every_page_opens_and_passes_axe(role: str, demo: None, page_for: Any, live_server: Any) -> None:
    page = page_for(role)
    paths = list(ROLES[role])
    # and the first dataset the role can open
    page.goto(f"{live_server.url}/datasets/")
    first = re.search(r'href="(/datasets/\d+/)"', page.content())
    assert first is not None
    paths.append(first.group(1))
    if role in ("steering", "admin"):  # and the settings form of an analysis
        page.goto(f"{live_server.url}/outcomes/{OUTCOMES[0]}/")
        settings = re.search(r'href="(/analyses/\d+/settings/)"', page.content())
        assert settings is not None
        paths.append(settings.group(1))
    problems: dict[str, list[str]] = {}
    for path in paths:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, (role, path)
        found = serious_violations(page)
        if found:
            problems[path] = found
    assert problems == {}, problems


def test_the_sign_in_and_welcome_pages_pass_axe(page_for: Any, live_server: Any) -> None:
    page = page_for(None)
    for path in ("/", "/accounts/login/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200
        assert serious_violations(page) == [], path
