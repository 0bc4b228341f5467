"""Outcome page benchmark: the page's server time, and each figure's first drawing against its
later requests from the figure store.

Setup: the demo consortium plus one large synthetic outcome (k = 1,000 independent studies, so
every block applies: funnel, trim-and-fill, Baujat, cumulative, leave-one-out, influence) on a
dedicated PostgreSQL database (``bench_portal``, recreated), computed through the real services and
engine. Requests go through Django's test client in this process (the whole middleware stack, DEBUG
off), signed in as the steering group; the time is the server's, with no network.

For each page: the first request, then the median and p95 of ``N`` repeated requests. For each
figure: the first request (drawn and stored) and the median of later requests (served from the
store).

Usage: ``python -m bench.portal_bench --out bench/PORTAL.md`` (``make bench-portal``).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import percentile, time_repeated

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
DB_NAME = "bench_portal"
BIG_K = 1_000
REPEATS = 30
FIGURE_REPEATS = 10
#: Goals for the page's server time (median of repeated requests), in milliseconds.
GOALS = {77: 100.0, BIG_K: 500.0}


def _prepare() -> dict[int, str]:
    """Recreate the database, load the demo and the large outcome; the outcomes to measure."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "apps.config.settings.local",
            "DEBUG": "false",
            "DATABASE_URL": f"{base}/{DB_NAME}",
            "CELERY_BROKER_URL": "memory://",
            "OUTBOX_PUBLISH_ON_COMMIT": "false",
            "LOG_LEVEL": "ERROR",
            "PLATFORM_VAR_DIR": tempfile.mkdtemp(prefix="bench-portal-"),
            "UPLOAD_ROOT": tempfile.mkdtemp(prefix="bench-portal-media-"),
        }
    )
    import django

    django.setup()
    import numpy as np
    from django.core.management import call_command

    from apps.analyses.models import Analysis
    from apps.analyses.services import analysis_create_default, analysis_recompute
    from apps.consortium.models import Centre, Outcome
    from apps.datasets.ingest import parse_json_rows
    from apps.datasets.models import Dataset
    from apps.datasets.services import dataset_set_status, dataset_version_create, upload_spec_for

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_demo", verbosity=0)
    big = Outcome.objects.create(code="big", name="Large synthetic outcome", measure="SMD")
    analysis = analysis_create_default(outcome=big)
    rng = np.random.default_rng(7)
    n = rng.integers(20, 200, size=(BIG_K, 2))
    rows = [
        {
            "study": f"Trial {i + 1}",
            "year": int(rng.integers(1995, 2026)),
            "m1i": round(float(rng.normal(10.3, 1.0)), 3),
            "sd1i": round(float(rng.uniform(3, 5)), 3),
            "n1i": int(n[i, 0]),
            "m2i": round(float(rng.normal(10.0, 1.0)), 3),
            "sd2i": round(float(rng.uniform(3, 5)), 3),
            "n2i": int(n[i, 1]),
        }
        for i in range(BIG_K)
    ]
    centre = Centre.objects.order_by("code").first()
    assert centre is not None
    version, _ = dataset_version_create(
        actor=None,
        centre=centre,
        outcome=big,
        parsed=parse_json_rows(rows, spec=upload_spec_for(big)),
        content=None,
        filename="big.json",
    )
    dataset_set_status(actor=None, dataset=version.dataset, status=Dataset.Status.SUBMITTED)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.k == BIG_K, result
    demo = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True)
    assert demo.current_result is not None and demo.current_result.k == 77
    return {77: "postnatal-depression", BIG_K: "big"}


def _requests(client: Any, path: str, n: int) -> tuple[list[Any], list[float]]:
    """n requests for ``path``: the responses and the milliseconds each took."""
    responses, seconds = time_repeated(functools.partial(client.get, path), n)
    return responses, [t * 1000 for t in seconds]


def run(out: Path, repeats: int) -> str:
    outcomes = _prepare()
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="steering"))
    pages = []
    figures = []
    for k, code in outcomes.items():
        url = f"/outcomes/{code}/"
        [resp], [first] = _requests(client, url, 1)
        assert resp.status_code == 200, resp.status_code
        again, times = _requests(client, url, repeats)
        assert all(r.status_code == 200 for r in again)
        html = resp.content.decode()
        pages.append((k, code, first, statistics.median(times), percentile(times, 95), len(resp.content)))
        for src, name in re.findall(r'<img src="(/results/\d+/figures/(\w+)\.svg)"', html):
            for fmt in ("svg", "png"):
                path = src.replace(".svg", f".{fmt}")
                [drawn], [first_fig] = _requests(client, path, 1)
                assert drawn.status_code == 200, (path, drawn.status_code)
                stored, later = _requests(client, path, FIGURE_REPEATS)
                assert all(f.content == drawn.content for f in stored)
                figures.append((k, name, fmt, first_fig, statistics.median(later), len(drawn.content)))
    previews = _previews(outcomes, repeats, {k: median for k, _, _, median, _, _ in pages})
    page_rows = [
        f"| {code} | {k:,} | {first:.1f} | {median:.1f} | {p95:.1f} | {size:,} | "
        f"{'met' if median < GOALS[k] else 'not met'} (< {GOALS[k]:.0f} ms) |"
        for k, code, first, median, p95, size in pages
    ]
    figure_rows = [
        f"| {k:,} | {name} | {fmt.upper()} | {first:.0f} | {again:.2f} | {size:,} |"
        for k, name, fmt, first, again, size in figures
    ]
    text = f"""# Outcome page benchmark

{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, {os.cpu_count()} cores; Django's
test client in one process (every middleware, DEBUG off), PostgreSQL (local), signed in as the steering
group. k = 77 is the demo's largest outcome (postnatal depression: 77 effects in 56 studies, CHE model
with CR2 tests); k = {BIG_K:,} is a synthetic outcome of independent studies computed through the real
services and engine, so every figure applies.

## The page

Server time of `/outcomes/<code>/` in milliseconds: the first request, then the median and p95 of
{repeats} repeated requests. The page links to its figures and never draws them.

| outcome | k | first ms | median ms | p95 ms | HTML bytes | goal |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(page_rows)}

## An upload's preview

Server time of the preview page for a file that changes one value of a centre's data, seen by a data
manager who is also on the steering group: the rows' diff and effect sizes, and every analysis of the
outcome recomputed with the file in place (without its sensitivity and bias analyses). Median of
{repeats} requests, beside the outcome page's median in the same run.

| outcome | k | rows in the file | analyses | median ms | p95 ms | vs the outcome page |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(previews)}

## Each figure: drawn once, then served from the store

First request (drawn with matplotlib and stored) against the median of {FIGURE_REPEATS} later requests
(the stored bytes), in milliseconds.

| k | figure | format | first (drawn) ms | later (stored) ms | bytes |
| ---: | --- | --- | ---: | ---: | ---: |
{chr(10).join(figure_rows)}

Reproduce with `make bench-portal` (`python -m bench.portal_bench --out bench/PORTAL.md`).
"""
    out.write_text(text)
    return text


def _previews(outcomes: dict[int, str], repeats: int, page_ms: dict[int, float]) -> list[str]:
    """Upload, for each outcome, its first submitted centre's rows with one value changed, and time
    the preview page (see the table's description)."""
    import csv
    import io

    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from apps.analyses.models import Analysis
    from apps.consortium.models import ConsortiumRole, Membership
    from apps.consortium.services import membership_set
    from apps.datasets.models import Dataset

    person = get_user_model().objects.create_user("bench-previewer")
    ConsortiumRole.objects.create(user=person, role=ConsortiumRole.Role.STEERING)
    client = Client()
    client.force_login(person)
    lines = []
    for k, code in outcomes.items():
        dataset = (
            Dataset.objects.filter(outcome__code=code, status=Dataset.Status.SUBMITTED)
            .select_related("centre", "current_version")
            .order_by("centre__code")
            .first()
        )
        assert dataset is not None and dataset.current_version is not None
        membership_set(actor=None, user=person, centre=dataset.centre, role=Membership.Role.DATA_MANAGER)
        version = dataset.current_version
        rows = [dict(r) for r in version.rows]
        column = next(c for c in ("m1i", "yi", "ai", "ri", "xi") if rows[0].get(c) is not None)
        rows[0][column] = rows[0][column] + 1
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(version.columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: "" if r.get(c) is None else r[c] for c in version.columns} for r in rows)
        upload = SimpleUploadedFile("bench.csv", buffer.getvalue().encode(), content_type="text/csv")
        staged = client.post(
            "/upload/", {"centre": dataset.centre.code, "outcome": code, "file": upload, "reason": "bench"}
        )
        assert staged.status_code == 302, staged.content[:500]
        previews, times = _requests(client, staged["Location"], repeats)
        assert all(p.status_code == 200 and b'id="pooled-effect"' in p.content for p in previews)
        median = statistics.median(times)
        analyses = Analysis.objects.filter(outcome__code=code).count()
        lines.append(
            f"| {code} | {k:,} | {len(rows):,} | {analyses} | {median:.1f} | {percentile(times, 95):.1f} | "
            f"{median / page_ms[k]:.1f}× |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "PORTAL.md")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    print(run(args.out, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
