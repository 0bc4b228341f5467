"""What the portal's page tests share: the demo consortium, and a person signed in."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.fixture
def demo_loaded(tmp_media: Any) -> None:
    """The demo consortium (``manage.py load_demo``), its files under a temporary media root."""
    with open(os.devnull, "w") as out:
        call_command("load_demo", stdout=out)


def signed_in(username: str) -> Client:
    """A client signed in as ``username`` without the sign-in form (its own tests go through it)."""
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client
