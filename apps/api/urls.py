"""The versioned API root: /api/v1/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from apps.api.views import analyses, audit, consortium, datasets, releases, results, tokens

router = DefaultRouter()
router.register("centres", consortium.CentreViewSet, basename="centre")
router.register("outcomes", consortium.OutcomeViewSet, basename="outcome")
router.register("datasets", datasets.DatasetViewSet, basename="dataset")
router.register("analyses", analyses.AnalysisViewSet, basename="analysis")
router.register("results", results.AnalysisResultViewSet, basename="result")
router.register("releases", releases.ReleaseViewSet, basename="release")
router.register("audit", audit.AuditEventViewSet, basename="audit")
router.register("tokens", tokens.ApiTokenViewSet, basename="token")

urlpatterns = [*router.urls, path("", include("apps.webhooks.urls"))]
