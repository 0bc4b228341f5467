from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        # a password change or deactivation ends the person's API tokens
        # and the OpenAPI schema knows the token and password schemes
        from apps.api import schema, signals  # noqa: F401
