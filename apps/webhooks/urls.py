"""``/api/v1/webhooks/``, included by ``apps/api/urls.py`` inside the API's version namespace."""

from rest_framework.routers import SimpleRouter

from apps.webhooks.api import WebhookViewSet

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns = router.urls
