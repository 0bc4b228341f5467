from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        # a password change or deactivation ends the person's API tokens
        # and the OpenAPI schema knows the token and password schemes
        # and every new result gets its API documents when it is stored
        from apps.api import documents, schema, signals  # noqa: F401
