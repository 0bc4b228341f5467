"""The versioned API root: /api/v1/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from apps.api import views, views_releases, views_tokens

router = DefaultRouter()
router.register("centres", views.CentreViewSet, basename="centre")
router.register("outcomes", views.OutcomeViewSet, basename="outcome")
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("analyses", views.AnalysisViewSet, basename="analysis")
router.register("results", views.AnalysisResultViewSet, basename="result")
router.register("releases", views_releases.ReleaseViewSet, basename="release")
router.register("audit", views.AuditEventViewSet, basename="audit")
router.register("tokens", views_tokens.ApiTokenViewSet, basename="token")

urlpatterns = [*router.urls, path("", include("apps.webhooks.urls"))]
