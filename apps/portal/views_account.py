"""The person's own page: who they are in the consortium (centres and roles, API tokens) and their
password.

Changing the password goes through Django's ``PasswordChangeView`` (old password, validators, the
session kept); the change ends every API token of the person (``apps.api.signals``), and the page
says so, with how many.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy

from apps.api.tokens import tokens_of
from apps.consortium import roles
from apps.consortium.models import ConsortiumRole, Membership


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """Centres and roles, the consortium-wide roles, the API tokens and what each role may do."""
    user = cast(User, request.user)  # signed in: login_required
    memberships = Membership.objects.filter(user=user).select_related("centre").order_by("centre__name")
    return render(
        request,
        "portal/account.html",
        {
            "memberships": memberships,
            "consortium_roles": ConsortiumRole.objects.filter(user=user),
            "is_administrator": roles.is_administrator(user),
            "is_steering": roles.is_steering(user),
            "service_account": roles.api_client_of(user),
            "token_count": tokens_of(user).count(),
        },
    )


class PasswordChange(auth_views.PasswordChangeView):
    """Django's password change, which keeps the session; the person's API tokens end with it."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("portal:account")

    def form_valid(self, form: Any) -> HttpResponse:
        tokens = tokens_of(self.request.user).count()
        response = super().form_valid(form)
        ended = f" Your {tokens} API token{'s' if tokens != 1 else ''} ended with it." if tokens else ""
        messages.success(self.request, f"Your password is changed.{ended}")
        return response
