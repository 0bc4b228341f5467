"""Webhooks: their owners' write rules, the deliveries they are owed, and getting those delivered.

- ``access``: who may hold a webhook; stopping one whose owner no longer may
- ``validation``: what a webhook may say (receiver URL, events, thresholds)
- ``writes``: the owner's writes (create, change, delete, rotate the secret, ping)
- ``payloads``: recording deliveries with their payloads, inside the change's transaction
- ``dispatch``: the relay, the sweep and one attempt

The flow, and why a delivery is never lost:

1. A change (a new current result, a published release) is announced by a signal inside its own
   transaction; ``deliveries_record_result`` and ``deliveries_record_release`` write one
   ``WebhookDelivery`` per webhook and event in that transaction (an outbox): a delivery exists if
   and only if the change committed. Each payload holds only what the webhook's owner may read.
2. The relay (``webhook_deliveries_publish_pending``, run by beat every OUTBOX_RELAY_INTERVAL_SECONDS)
   hands every due delivery to the broker as a ``deliver_webhook`` task. While the broker is down the
   deliveries stay pending, and the next tick after it is back publishes them.
3. The task (``webhook_delivery_attempt``) claims the delivery with a lease, re-checks that the owner
   may still read everything in it, POSTs it (``delivery.post``, outside any transaction) and records
   the attempt. A failure schedules the next attempt with exponential backoff (the relay publishes it
   when it is due); after WEBHOOKS_MAX_ATTEMPTS attempts the delivery is marked failed.
4. Tasks are acknowledged late and rejected when a worker dies. The sweep
   (``webhook_deliveries_requeue_stale``) re-queues deliveries whose lease expired (the worker died
   mid-attempt) and those published long ago but never picked up (a lost message). Delivery is
   therefore at least once: a receiver recognises a repeat by its ``X-Evidence-Delivery`` id.
"""

from apps.webhooks.services.access import owner_may_subscribe
from apps.webhooks.services.dispatch import (
    LOST_ATTEMPT,
    retry_delay,
    webhook_deliveries_publish_pending,
    webhook_deliveries_requeue_stale,
    webhook_delivery_attempt,
)
from apps.webhooks.services.payloads import deliveries_record_release, deliveries_record_result
from apps.webhooks.services.validation import (
    ESTIMATE_THRESHOLD_MAX,
    URL_MAX_LENGTH,
    clean_url,
    webhook_validate,
)
from apps.webhooks.services.writes import (
    PING_MESSAGE,
    webhook_create,
    webhook_delete,
    webhook_ping,
    webhook_rotate_secret,
    webhook_update,
)

__all__ = [
    "ESTIMATE_THRESHOLD_MAX",
    "LOST_ATTEMPT",
    "PING_MESSAGE",
    "URL_MAX_LENGTH",
    "clean_url",
    "deliveries_record_release",
    "deliveries_record_result",
    "owner_may_subscribe",
    "retry_delay",
    "webhook_create",
    "webhook_delete",
    "webhook_deliveries_publish_pending",
    "webhook_deliveries_requeue_stale",
    "webhook_delivery_attempt",
    "webhook_ping",
    "webhook_rotate_secret",
    "webhook_update",
    "webhook_validate",
]
