from django.urls import path, re_path

from apps.portal import (
    views,
    views_account,
    views_analyses,
    views_dashboard,
    views_figures,
    views_live,
    views_outcome,
    views_releases,
    views_tokens,
)

app_name = "portal"

urlpatterns = [
    path("", views_dashboard.home, name="home"),
    path("live/", views_live.live, name="live"),
    path("outcomes/<slug:code>/", views_outcome.outcome_detail, name="outcome"),
    path(
        "results/<int:pk>/figures/<slug:name>.<slug:fmt>", views_figures.result_figure, name="result-figure"
    ),
    path("results/<int:pk>/tables/<slug:name>.csv", views_figures.result_table, name="result-table"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/<str:action>/", views.dataset_action, name="dataset-action"),
    path("upload/", views.upload, name="upload"),
    re_path(r"^upload/(?P<key>[0-9a-f]{32})/$", views.upload_preview_view, name="upload-preview"),
    path("audit/", views.audit, name="audit"),
    path("analyses/<int:pk>/settings/", views_analyses.analysis_settings, name="analysis-settings"),
    path("releases/publish/", views_releases.release_publish_view, name="release-publish"),
    re_path(
        r"^releases/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,39})/$",
        views_releases.release_detail,
        name="release",
    ),
    path("account/", views_account.account, name="account"),
    path("account/password/", views_account.PasswordChange.as_view(), name="password-change"),
    path("tokens/", views_tokens.tokens, name="tokens"),
    path("tokens/<str:key>/revoke/", views_tokens.token_revoke_view, name="token-revoke"),
]
