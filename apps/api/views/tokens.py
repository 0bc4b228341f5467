"""API tokens through the API: list, create (the secret shown once) and revoke your own.

A token cannot create tokens: creation takes the person's password (HTTP Basic, counted by the
sign-in lock-out like any sign-in) or a portal session, so a leaked token cannot mint a longer-lived
or wider one. Listing and revoking work with a token too: whoever finds a leaked token in a log can
revoke it with itself.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import serializers as s
from apps.api.authentication import ApiTokenAuthentication, PasswordAuthentication
from apps.api.models import ApiToken
from apps.api.permissions import TokenScopes
from apps.api.tokens import token_create, token_revoke, tokens_of
from apps.consortium import roles


class ApiTokenViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your API tokens (administrators: also those of service accounts)."""

    serializer_class = s.ApiTokenSerializer
    lookup_field = "token_key"
    lookup_value_regex = "[A-Za-z0-9_]{1,20}"
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication, PasswordAuthentication]
    permission_classes = [IsAuthenticated, TokenScopes]
    read_scope = None  # any token lists its own user's tokens
    write_scope = None  # and revokes them (creation refuses tokens below)

    queryset = ApiToken.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self) -> Any:
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        if roles.is_administrator(user):
            service = ApiToken.objects.filter(user__api_client__isnull=False)
            return (tokens_of(user) | service).select_related("user").order_by("-created")
        return tokens_of(user).select_related("user")

    @extend_schema(request=s.ApiTokenCreateSerializer, responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a token; the response holds its secret, shown this once."""
        if isinstance(request.auth, ApiToken):
            raise PermissionDenied(
                "A token cannot create tokens: sign in with your password (HTTP Basic) or use the portal."
            )
        form = s.ApiTokenCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        actor = cast(User, request.user)
        owner: Any = actor
        account = data.pop("service_account", None)
        if account is not None:
            owner = get_user_model().objects.filter(username=account, api_client__isnull=False).first()
            if owner is None or not roles.is_administrator(actor):
                raise NotFound("No such service account.")
        token, secret = token_create(actor=actor, user=owner, data=data)
        body = dict(s.ApiTokenSerializer(token).data)
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        token_revoke(actor=self.request.user, token=instance)
