"""Webhook subscriptions, their deliveries (the outbox) and every attempt (the delivery log)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.webhooks.events import DEFAULT_ESTIMATE_THRESHOLD, DEFAULT_I2_THRESHOLD


class Webhook(models.Model):
    """A receiver URL and the events its owner wants, signed with a secret of its own.

    The owner is a person or an API client's service account. ``secret`` is stored as generated:
    the platform needs it to sign every delivery, as it needs any credential it uses to call out,
    so the database (and its backups) must be protected accordingly. It is shown to the owner once,
    when the webhook is created or its secret rotated, and never again.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="The events delivered, e.g. result.changed.")
    i2_threshold = models.FloatField(
        default=DEFAULT_I2_THRESHOLD, help_text="i2.crossed fires when I² (%) crosses this."
    )
    estimate_threshold = models.FloatField(
        default=DEFAULT_ESTIMATE_THRESHOLD,
        help_text="estimate.moved fires when the estimate (analysis scale) moves by more than this.",
    )
    active = models.BooleanField(default=True, help_text="Paused webhooks record and deliver nothing.")
    secret = models.CharField(max_length=100, help_text="Signs the deliveries; stored as is (see the model).")
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(
        max_length=300, blank=True, help_text="Why the platform stopped this webhook (its owner lost access)."
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.owner} -> {self.url}"


class WebhookDelivery(models.Model):
    """One event for one webhook: written in the transaction of the change it announces (the outbox),
    then delivered by the workers, retried with backoff until it is delivered or fails for good.

    ``queued_at`` is when the relay handed it to the broker; ``leased_until`` is how long the attempt
    in progress holds it (a worker that dies mid-attempt leaves it to expire, and the sweep re-queues
    the delivery). ``payload`` is the JSON body; ``result_ids`` the results it shows, each of which must
    still be visible to the owner when it is sent.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        WITHHELD = "withheld", "Withheld"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    result_ids = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)  # the sweep forgets old ones
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                name="webhook_delivery_pending",
                condition=models.Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.uuid} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: the log keeps its status code, duration, error and the first 1 KiB of
    the receiver's answer. An attempt without ``finished_at`` is in progress, or its worker died."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_body = models.TextField(blank=True, help_text="The first 1 KiB of the answer, as text.")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="one_attempt_per_number"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery} attempt {self.number}"
