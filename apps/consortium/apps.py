from django.apps import AppConfig


class ConsortiumConfig(AppConfig):
    name = "apps.consortium"
    label = "consortium"
