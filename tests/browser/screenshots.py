"""Screenshots of the key pages, as each demo role sees them, at 1366 and 820 px wide.

Serves the demo consortium (``make demo``: the embedded SQLite database) with Django's server on a
free local port and drives Debian's Chromium through it with Playwright, writing one PNG per page,
role and width (full page) into the folder given.

Usage: ``python -m tests.browser.screenshots --out screenshots`` (``make screenshots``).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTHS = (1366, 820)
PASSWORD = "demo-password"
ROLES = {
    "steering": [
        "/",
        "/outcomes/postnatal-depression/",
        "/outcomes/secure-attachment/",
        "/outcomes/infant-social-emotional/",
        "/audit/",
        "/datasets/",
        "/releases/demo-2026.1/",
    ],
    "dm-north": ["/", "/datasets/", "/upload/", "/tokens/", "/account/"],
    "member-north": [
        "/",
        "/outcomes/reflective-functioning/",
        "/outcomes/secure-attachment/",
        "/releases/demo-2026.1/",
        "/datasets/",
        "/account/",
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(role: str, path: str, width: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.strip("/").lower()) or "dashboard"
    return f"{role}--{slug}--{width}.png"


def run(out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    written: list[Path] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/accounts/login/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            for role, paths in ROLES.items():
                for width in WIDTHS:
                    context = browser.new_context(viewport={"width": width, "height": 900})
                    page = context.new_page()
                    page.goto(f"{base}/accounts/login/")
                    page.fill("#id_username", role)
                    page.fill("#id_password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(f"{base}/")
                    for path in paths:
                        page.goto(f"{base}{path}")
                        _load_images(page)
                        target = out / _name(role, path, width)
                        page.screenshot(path=str(target), full_page=True)
                        written.append(target)
                    if role == "dm-north":
                        written += _upload_preview(page, base, out, width)
                    if role == "steering":  # an analysis's settings form, reached from its outcome page
                        page.goto(f"{base}/outcomes/postnatal-depression/")
                        page.click("text=Change settings")
                        page.wait_for_url(f"{base}/analyses/*/settings/")
                        target = out / _name(role, "analysis-settings", width)
                        page.screenshot(path=str(target), full_page=True)
                        written.append(target)
                        written += _previews(page, base, out, width)
                    context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return written


def _load_images(page: Any) -> None:
    """Figures load lazily (as they scroll into view): a full-page picture needs them all, each
    drawn (the first request of a figure draws it) and decoded."""
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    deadline = time.monotonic() + 60
    # polled from here: the pages' content policy forbids the evaluated predicate wait_for_function uses
    while not page.evaluate("[...document.images].every(i => i.complete)") and time.monotonic() < deadline:
        time.sleep(0.2)


def _previews(page: Any, base: str, out: Path, width: int) -> list[Path]:
    """The steering group's two reviews before a change counts, neither confirmed (the demo stays
    as it is): a settings change (90% intervals) and a release of today's results."""
    page.fill("#id_level", "90")
    page.fill("#id_reason", "90% intervals, as the protocol says")
    page.click("#preview-settings")
    page.wait_for_selector("#settings-preview")
    written = [
        out / _name("steering", "settings-preview", width),
        out / _name("steering", "release-review", width),
    ]
    page.screenshot(path=str(written[0]), full_page=True)
    page.goto(f"{base}/")
    page.click("#publish-release summary")
    page.fill("#release-name", "2026.2")
    page.fill("#release-notes", "Today's results.")
    page.click("#publish-release button[type=submit]")
    page.wait_for_selector("#release-review")
    page.screenshot(path=str(written[1]), full_page=True)
    return written


def _upload_preview(page: Any, base: str, out: Path, width: int) -> list[Path]:
    """The preview of a corrected file (North's postnatal depression rows with the first study's
    intervention mean lowered) and the dataset page; the preview is discarded, so the demo's
    data stay as they were."""
    listing = page.request.get(
        f"{base}/api/v1/datasets/?centre__code=north&outcome__code=postnatal-depression"
    )
    dataset = listing.json()["results"][0]["id"]
    text = page.request.get(f"{base}/api/v1/datasets/{dataset}/export/?fmt=csv").text()
    rows = list(csv.DictReader(io.StringIO(text)))
    column = "m1i" if rows[0].get("m1i") else "yi"
    rows[0][column] = str(round(float(rows[0][column]) - 3.0, 3))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    page.goto(f"{base}/upload/")
    page.select_option("#upload-centre", "north")
    page.select_option("#upload-outcome", "postnatal-depression")
    page.set_input_files(
        "#upload-file",
        files=[{"name": "corrected.csv", "mimeType": "text/csv", "buffer": buffer.getvalue().encode()}],
    )
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{base}/upload/*/")
    written = [
        out / _name("dm-north", "upload-preview", width),
        out / _name("dm-north", f"datasets/{dataset}", width),
    ]
    page.screenshot(path=str(written[0]), full_page=True)
    page.click("#discard-upload")
    page.goto(f"{base}/datasets/{dataset}/")
    page.screenshot(path=str(written[1]), full_page=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args(argv)
    for path in run(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
