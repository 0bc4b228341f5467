"""The webhooks API, ``/api/v1/webhooks/``: each owner sees and changes their own webhooks only (anyone
else's answer 404). Writes go through ``apps.webhooks.services.writes``; their refusals reach the client
through ``apps.api.errors.exception_handler``."""

from __future__ import annotations

from typing import Any, cast

import django_filters
from django.contrib.auth.models import User
from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.analyses.models import AnalysisResult
from apps.api.errors import CONFLICT_RESPONSE
from apps.api.filters import StrictChoiceFilter
from apps.api.models import ApiToken
from apps.api.permissions import TokenScopes
from apps.api.serializers import StrictBooleanField, StrictCharField, StrictFloatField, plain_text
from apps.webhooks import events
from apps.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from apps.webhooks.services import access, validation, writes


@extend_schema_field(
    {
        "type": "string",
        "format": "uri",
        "pattern": "^https?://",
        "minLength": 1,
        "maxLength": validation.URL_MAX_LENGTH,
    }
)
class WebhookURLField(StrictCharField):
    """An http(s) URI of at most 2,000 characters. Whether the platform may call it (https in
    production, a public address, no credentials) is for ``validation.clean_url`` to say."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=validation.URL_MAX_LENGTH, trim_whitespace=False, **kwargs)
        self.validators.append(RegexValidator(r"^https?://", message="Give an https:// URL."))


class WebhookSerializer(serializers.ModelSerializer):
    """Shapes and types; the rules (https, allowed addresses, a limit per owner) are the services'."""

    url = WebhookURLField(
        help_text="The receiver: an https URL on a public address (see docs/webhooks.md).",
    )
    description = plain_text(max_length=200, required=False, allow_blank=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(events.EVENTS.items())),
        min_length=1,
        max_length=len(events.EVENTS),
        help_text="The events to deliver (each once; a repeat is ignored).",
    )
    i2_threshold = StrictFloatField(
        required=False, min_value=0, max_value=100, help_text="i2.crossed: the I² (%) threshold (default 50)."
    )
    estimate_threshold = StrictFloatField(
        required=False,
        min_value=0,
        max_value=validation.ESTIMATE_THRESHOLD_MAX,
        help_text="estimate.moved: the change of the estimate, on the analysis scale, that counts (default 0.1).",
    )
    active = StrictBooleanField(required=False, help_text="false pauses the webhook; true restarts it.")

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "description",
            "events",
            "i2_threshold",
            "estimate_threshold",
            "active",
            "disabled_reason",
            "disabled_at",
            "secret_rotated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["disabled_reason", "disabled_at", "secret_rotated_at", "created_at", "updated_at"]


class WebhookWithSecretSerializer(WebhookSerializer):
    """A webhook with its secret: the answer to creating one and to rotating its secret, only."""

    secret = serializers.CharField(
        read_only=True,
        help_text="Signs every delivery. Shown this once: keep it in the receiver's configuration.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "started_at",
            "finished_at",
            "status_code",
            "duration_ms",
            "error",
            "response_body",
        ]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    """A delivery and its attempts. The payload is shown while everything in it is visible to the reader."""

    id = serializers.UUIDField(source="uuid", read_only=True, help_text="The X-Evidence-Delivery header.")
    payload = serializers.SerializerMethodField()
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "status",
            "attempts",
            "created_at",
            "next_attempt_at",
            "finished_at",
            "last_status_code",
            "last_error",
            "payload",
            "attempt_log",
        ]

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {}})
    def get_payload(self, obj: WebhookDelivery) -> dict[str, Any] | None:
        visible = self.context.get("visible_result_ids")
        if visible is not None and not set(obj.result_ids) <= visible:
            return None
        return dict(obj.payload)


class DeliveryFilter(django_filters.FilterSet):
    status = StrictChoiceFilter(choices=WebhookDelivery.Status.choices)
    event = StrictChoiceFilter(choices=[*events.EVENTS.items(), (events.PING, "A ping the owner asked for.")])

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event"]


class MayHoldWebhooks(BasePermission):
    message = "Webhooks are for people and for API clients with the results:read scope."

    def has_permission(self, request: Any, view: Any) -> bool:
        return access.owner_may_subscribe(request.user)


class WebhookViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your webhooks: signed POSTs to your receiver when results change or releases are published."""

    serializer_class = WebhookSerializer
    permission_classes = [IsAuthenticated, TokenScopes, MayHoldWebhooks]
    # a webhook delivers results: managing one with a token takes the scope that reads them
    read_scope = ApiToken.Scope.RESULTS_READ
    write_scope = ApiToken.Scope.RESULTS_READ
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_class: type[django_filters.FilterSet] | None = None  # the delivery log sets its own
    #: a ping while an earlier one is pending is a 409 (``apps.api.errors``)
    conflict_actions = frozenset({"ping"})

    def get_queryset(self) -> Any:
        user = self.request.user
        if self.action == "deliveries":
            if not user.is_authenticated:
                return WebhookDelivery.objects.none()
            return (
                WebhookDelivery.objects.filter(webhook__owner=user)
                .prefetch_related("attempt_log")
                .order_by("-created_at", "-id")
            )
        if not user.is_authenticated:
            return Webhook.objects.none()
        return Webhook.objects.filter(owner=user).order_by("-created_at", "-id")

    @extend_schema(responses={201: WebhookWithSecretSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Register a webhook. The answer holds its secret, shown this once."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook, _ = writes.webhook_create(
            actor=cast(User, request.user), data=dict(serializer.validated_data)
        )
        return Response(WebhookWithSecretSerializer(webhook).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = writes.webhook_update(
            actor=cast(User, self.request.user),
            webhook=cast(Webhook, serializer.instance),
            changes=dict(serializer.validated_data),
        )

    def perform_destroy(self, instance: Webhook) -> None:
        writes.webhook_delete(actor=cast(User, self.request.user), webhook=instance)

    @extend_schema(request=None, responses={200: WebhookWithSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """A new secret, in force at once; the answer holds it, shown this once."""
        webhook = self.get_object()
        webhook, _ = writes.webhook_rotate_secret(actor=cast(User, request.user), webhook=webhook)
        return Response(WebhookWithSecretSerializer(webhook).data)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer, 409: CONFLICT_RESPONSE})
    @action(detail=True, methods=["post"])
    def ping(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """Queue a ``ping`` delivery to the receiver (also while the webhook is paused); 409 while an
        earlier ping is still pending."""
        webhook = self.get_object()
        delivery = writes.webhook_ping(actor=cast(User, request.user), webhook=webhook)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The webhook's id.")],
        responses=WebhookDeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"], filterset_class=DeliveryFilter)
    def deliveries(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """The delivery log, newest first: each delivery with its attempts (status code, duration,
        error, the first 1 KiB of the answer). ``?status=`` and ``?event=`` filter it."""
        webhook = get_object_or_404(Webhook.objects.filter(owner=cast(User, request.user)), pk=pk)
        deliveries = self.filter_queryset(self.get_queryset().filter(webhook=webhook))
        page = self.paginate_queryset(deliveries)
        shown = {pk for delivery in page or () for pk in delivery.result_ids}
        visible = set(
            AnalysisResult.objects.visible_to(request.user).filter(pk__in=shown).values_list("pk", flat=True)
        )
        context = {**self.get_serializer_context(), "visible_result_ids": visible}
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True, context=context).data)
