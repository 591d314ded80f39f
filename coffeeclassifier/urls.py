from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Coffee Classifier"
admin.site.site_title = "Coffee Classifier admin"
admin.site.index_title = "Datasets and models"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
]
