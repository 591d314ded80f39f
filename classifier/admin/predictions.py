"""Admin for prediction jobs: the record of what was asked and answered, and Add to dataset."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import format_html

from classifier import selectors
from classifier.models import PredictionJob
from classifier.services.maintenance import prediction_jobs_delete
from classifier.services.predictions import prediction_jobs_add_to_dataset
from classifier.templatetags.classifier_format import label_text, milliseconds, percentage
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


def timings(job: PredictionJob) -> list[tuple[str, float | None]]:
    """(stage, ms) from upload to answer: the wait in the queue (to the last attempt's start),
    the worker's preprocessing and inference, and the whole time the sender waited."""
    queue_wait = None
    if job.started_at is not None:
        queue_wait = (job.started_at - job.queued_at).total_seconds() * 1000
    return [("Queue wait", queue_wait), ("Preprocess", job.preprocess_ms), ("Inference", job.inference_ms),
            ("Total", job.total_ms())]


def probability_rows(job: PredictionJob) -> list[dict]:
    """Each label's probability, likeliest first, marking the one answered."""
    ranked = sorted((job.probabilities or {}).items(), key=lambda item: -item[1])
    return [{"label": name, "probability": probability, "answered": name == job.label}
            for name, probability in ranked]


class LabelFilter(admin.SimpleListFilter):
    """The answered label, named as people read it ("not coffee")."""

    title = "label"
    parameter_name = "label"

    def lookups(self, request, model_admin):
        return [(name, label_text(name)) for name in selectors.prediction_labels()]

    def queryset(self, request, queryset):
        return queryset.filter(label=self.value()) if self.value() else queryset


@admin.register(PredictionJob)
class PredictionJobAdmin(admin.ModelAdmin):
    list_display = ("photo", "queued_at", "answer", "version", "feedback_display", "took")
    # "unsure" answers first among the filters: they are the photos a curator should label first
    list_filter = ("decision", "status", "dataset", LabelFilter, "model_version", FeedbackFilter)
    list_select_related = ("dataset", "model_version__dataset", "feedback_label")
    search_fields = ("id", "label", "error", "worker")
    actions = ["add_to_dataset"]
    date_hierarchy = "queued_at"
    change_form_template = "admin/classifier/predictionjob/change_form.html"
    exclude = ["session_key"]  # it would let whoever reads it act as the visitor who sent the photo

    class Media:
        css = {"all": ["classifier/prediction.css"]}
        js = ["classifier/heatmap.js"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a job is a record of what was asked and answered

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The job as a curator reads it (`change_form.html`): photo and heatmap, the answer, timings,
        feedback. The session key that sent it stays out: it would let a reader act as that visitor."""
        job = self.get_object(request, object_id)
        context = {"job": job, "probabilities": probability_rows(job), "timings": timings(job)} if job else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})

    @admin.display(description="Photo")
    def photo(self, job):
        return format_html('<img class="job-thumbnail" src="{}" alt="" loading="lazy">',
                           reverse("prediction-image", args=[job.pk]))

    @admin.display(description="Answer", ordering="label")
    def answer(self, job):
        if job.status != PredictionJob.Status.DONE:
            return job.get_status_display()
        unsure = "unsure, maybe " if job.decision == PredictionJob.Decision.UNSURE else ""
        return format_html('{}{} <span class="nowrap">({})</span>', unsure, label_text(job.label),
                           percentage(job.confidence))

    @admin.display(description="Version", ordering="model_version__number")
    def version(self, job):
        return f"v{job.model_version.number}" if job.model_version else "–"

    @admin.display(description="Feedback", ordering="feedback")
    def feedback_display(self, job):
        if job.feedback == PredictionJob.Feedback.WRONG and job.feedback_label:
            return f"wrong: {label_text(job.feedback_label.name)}"
        return job.get_feedback_display().lower() if job.feedback else "–"

    @admin.display(description="Took")
    def took(self, job):
        return milliseconds(job.total_ms())

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
