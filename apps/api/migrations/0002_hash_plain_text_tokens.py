"""Replace DRF's plain-text tokens by hashed ``ApiToken`` rows, then delete the plain text.

Each existing token keeps working (its secret is hashed, not changed), with the scopes its user may
hold for reading (a service account: the scopes an administrator granted it), and an expiry of
``API_TOKEN_DEFAULT_DAYS`` from the migration. No secret stays readable in the database.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone
from knox.crypto import hash_token
from knox.settings import CONSTANTS


def hash_existing(apps, schema_editor):  # type: ignore[no-untyped-def]
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("api", "ApiToken")
    ApiClient = apps.get_model("consortium", "ApiClient")
    expiry = timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)
    for old in Token.objects.all():
        client = ApiClient.objects.filter(user_id=old.user_id).first()
        if client is not None:
            scopes = [s for s in ("results:read", "datasets:read") if s in (client.scopes or [])]
        else:
            scopes = ["results:read", "datasets:read"]
        ApiToken(
            digest=hash_token(old.key),
            token_key=old.key[: CONSTANTS.TOKEN_KEY_LENGTH],
            user_id=old.user_id,
            expiry=expiry,
            name="Token from before hashed tokens",
            scopes=scopes,
        ).save(force_insert=True)
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_api_tokens"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("consortium", "0003_outcome_measures_change_scores"),
    ]

    operations = [migrations.RunPython(hash_existing, migrations.RunPython.noop)]
