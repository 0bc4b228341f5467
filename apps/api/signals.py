"""A password change or a deactivation ends every API token of the person.

Caught at the model (``pre_save`` compares the stored password hash and ``is_active``), so every
path counts: the portal's password change, the admin, ``manage.py changepassword``, a script.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver

from apps.api.tokens import tokens_end


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
