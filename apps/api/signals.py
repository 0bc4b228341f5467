"""Model changes the API reacts to.

A password change or a deactivation ends every API token of the person. Caught at the model
(``pre_save`` compares the stored password hash and ``is_active``), so every path counts: the
portal's password change, the admin, ``manage.py changepassword``, a script.

And every change that could alter what the API's read path remembers (``apps.api.readcache``)
moves a generation on: tokens removed, users saved, roles and service accounts changed (``auth``);
results stored, releases published (``results``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.analyses.models import AnalysisResult, Release, ReleaseResult
from apps.api import readcache
from apps.api.models import ApiToken
from apps.api.tokens import tokens_end
from apps.consortium.models import ApiClient, ConsortiumRole


@receiver(pre_save, sender=get_user_model(), dispatch_uid="api_tokens_end_with_password")
def end_tokens_on_password_change(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is None:
        return
    stored = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if stored is None:
        return
    reason = None
    if stored["password"] != instance.password:
        reason = "password changed"
    elif stored["is_active"] and not instance.is_active:
        reason = "account deactivated"
    if reason is not None:
        # now, in the caller's transaction: the tokens that exist at the change end with it (and
        # come back if it rolls back); a token created after the change in the same transaction,
        # as the demo loader creates one after setting up its account, lives on
        tokens_end(user=instance, reason=reason)


def _auth_changed(sender: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a sign-in: nothing the read path remembers
    readcache.bump(readcache.AUTH)


def _results_changed(sender: Any, created: bool = True, **kwargs: Any) -> None:
    if created:  # results and releases are written once; only their creation changes anything
        readcache.bump(readcache.RESULTS)


post_delete.connect(_auth_changed, sender=ApiToken, dispatch_uid="readcache_token_deleted")
for model in (get_user_model(), ConsortiumRole, ApiClient):
    post_save.connect(_auth_changed, sender=model, dispatch_uid=f"readcache_saved_{model.__name__}")
    post_delete.connect(_auth_changed, sender=model, dispatch_uid=f"readcache_deleted_{model.__name__}")
for written_once in (AnalysisResult, Release, ReleaseResult):
    post_save.connect(
        _results_changed, sender=written_once, dispatch_uid=f"readcache_created_{written_once.__name__}"
    )
