from django.contrib import admin
from django.urls import path

from classifier import views
from classifier.api import api

admin.site.site_header = "Coffee Classifier"
admin.site.site_title = "Coffee Classifier admin"
admin.site.index_title = "Datasets and models"

urlpatterns = [
    path("", views.index, name="index"),
    path("predictions/<uuid:job_id>/image", views.prediction_image, name="prediction-image"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
