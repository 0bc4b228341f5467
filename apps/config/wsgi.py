"""WSGI entry point (gunicorn apps.config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.config.settings.local")
application = get_wsgi_application()
