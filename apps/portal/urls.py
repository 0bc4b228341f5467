from django.urls import path

from apps.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("outcomes/<slug:code>/", views.outcome_detail, name="outcome"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/<str:action>/", views.dataset_action, name="dataset-action"),
    path("upload/", views.upload, name="upload"),
    path("audit/", views.audit, name="audit"),
]
