"""Admin for prediction jobs: the record of what was asked and answered, and Add to dataset."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import format_html

from classifier.models import PredictionJob
from classifier.services.maintenance import prediction_jobs_delete
from classifier.services.predictions import prediction_jobs_add_to_dataset
from classifier.templatetags.classifier_format import percentage
from dataset.admin.datasets import import_report_show


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return [("none", "None"), *PredictionJob.Feedback.choices[1:]]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(feedback="")
        if self.value():
            return queryset.filter(feedback=self.value())
        return queryset


@admin.register(PredictionJob)
class PredictionJobAdmin(admin.ModelAdmin):
    list_display = ("photo", "queued_at", "dataset", "status", "label", "decision", "confidence_display",
                    "model_version", "feedback", "feedback_label", "took_ms")
    # "unsure" answers first among the filters: they are the photos a curator should label first
    list_filter = ("decision", "status", "dataset", "label", "model_version", FeedbackFilter)
    list_select_related = ("dataset", "model_version__dataset", "feedback_label")
    search_fields = ("id", "label", "error", "worker")
    actions = ["add_to_dataset"]
    date_hierarchy = "queued_at"
    readonly_fields = [field.name for field in PredictionJob._meta.fields] + ["photo"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a job is a record of what was asked and answered

    @admin.display(description="Photo")
    def photo(self, job):
        return format_html('<img src="{}" alt="" style="max-width:96px;max-height:96px">',
                           reverse("prediction-image", args=[job.pk]))

    @admin.display(description="Confidence")
    def confidence_display(self, job):
        return percentage(job.confidence)

    @admin.display(description="ms")
    def took_ms(self, job):
        return job.total_ms() or "–"

    def delete_model(self, request, obj):
        prediction_jobs_delete(jobs=PredictionJob.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        prediction_jobs_delete(jobs=queryset)

    @admin.action(description="Add to dataset (with the corrected label where feedback gave one)",
                  permissions=["view"])
    def add_to_dataset(self, request, queryset):
        if not request.user.has_perm("dataset.add_datasetimage"):
            raise PermissionDenied
        import_report_show(self, request, prediction_jobs_add_to_dataset(jobs=queryset))
