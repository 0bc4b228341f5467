"""The complete session of docs/api.md, run as written (with Python ``requests``) against a live
server, a real worker and the demo consortium: what a partner copies must work."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path
from typing import Any

from django.core.management import call_command

from apps.analyses.models import AnalysisResult, Release
from apps.webhooks.models import Webhook

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _python_session() -> str:
    text = DOCS.read_text()
    section = text[text.index("### With Python `requests`") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_documented_python_session_works(
    live_worker: Any, live_server: Any, tmp_media: Any, tmp_path: Path, settings: Any, monkeypatch: Any
) -> None:
    call_command("load_demo", verbosity=0)
    # the documented receiver's name does not resolve here: its address is checked at delivery time
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    code = _python_session().replace(
        'API = "http://127.0.0.1:8000/api/v1"', f'API = "{live_server.url}/api/v1"'
    )
    assert live_server.url in code
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # the documentation's own code

    result = AnalysisResult.objects.get(pk=namespace["result"]["id"])
    assert result.analysis.outcome.code == "postnatal-depression" and result.status == "done"
    north = [v for v in result.dataset_versions if v["centre"] == "north"]
    assert len(north) == 1 and north[0]["number"] == 2  # the corrected version entered the result
    assert namespace["pooled"]["estimate"] == result.pooled["estimate"]
    assert namespace["effects"] == result.blocks["effect_sizes"]
    release = Release.objects.get(name="north-correction")
    assert list(release.results.all()) == [result]
    with zipfile.ZipFile(tmp_path / f"result-{result.pk}.zip") as bundle:
        assert {"data.csv", "analysis.R", "reproduce.py", "SHA256SUMS"} <= set(bundle.namelist())
    hook = Webhook.objects.get(owner__username="steering")
    assert namespace["SECRET"] and hook.events == ["result.changed", "ci.excludes_null", "release.published"]
    # the documented verifier accepts a delivery signed as the platform signs it, and nothing else
    from apps.webhooks.delivery import signed_headers

    body = b'{"event":"ping"}'
    headers = signed_headers(
        secret=namespace["SECRET"], event="ping", delivery_id="x", body=body, timestamp=int(time.time())
    )
    assert namespace["verify"](headers, body)
    assert not namespace["verify"](headers, body + b" ")
    assert not namespace["verify"]({**headers, "X-Evidence-Timestamp": str(int(time.time()) - 600)}, body)
