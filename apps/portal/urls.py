from django.urls import path

from apps.portal import (
    views,
    views_account,
    views_analyses,
    views_dashboard,
    views_outcome,
    views_releases,
    views_tokens,
)

app_name = "portal"

urlpatterns = [
    path("", views_dashboard.home, name="home"),
    path("outcomes/<slug:code>/", views_outcome.outcome_detail, name="outcome"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/<str:action>/", views.dataset_action, name="dataset-action"),
    path("upload/", views.upload, name="upload"),
    path("audit/", views.audit, name="audit"),
    path("analyses/<int:pk>/settings/", views_analyses.analysis_settings, name="analysis-settings"),
    path("releases/publish/", views_releases.release_publish_view, name="release-publish"),
    path("account/", views_account.account, name="account"),
    path("account/password/", views_account.PasswordChange.as_view(), name="password-change"),
    path("tokens/", views_tokens.tokens, name="tokens"),
    path("tokens/<str:key>/revoke/", views_tokens.token_revoke_view, name="token-revoke"),
]
