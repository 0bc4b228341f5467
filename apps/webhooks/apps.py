from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apps.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        # The analyses app announces its changes by signals, sent inside the change's transaction; the
        # deliveries recorded here commit or roll back with it (an outbox). Analyses never import us.
        from apps.analyses.signals import release_published, result_released, result_stored
        from apps.webhooks import receivers

        result_stored.connect(receivers.on_result_stored, dispatch_uid="webhooks.on_result_stored")
        result_released.connect(receivers.on_result_released, dispatch_uid="webhooks.on_result_released")
        release_published.connect(
            receivers.on_release_published, dispatch_uid="webhooks.on_release_published"
        )
