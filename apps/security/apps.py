from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """Defences around the application: request limits, the client's address, sign-in lock-out
    records in the audit trail."""

    name = "apps.security"
    label = "security"

    def ready(self) -> None:
        from apps.security import signals  # noqa: F401  (connects the receivers)
