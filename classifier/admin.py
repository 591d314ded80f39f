"""Admin for model versions (metrics, activation, rollback, comparison) and the dataset's Retrain."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from classifier import monitoring, selectors
from classifier.models import ModelVersion, PredictionJob, WorkerProcess
from classifier.services.maintenance import datasets_classifier_data_delete, prediction_jobs_delete
from classifier.services.predictions import prediction_jobs_add_to_dataset
from classifier.services.training import model_version_activate, model_version_request
from classifier.templatetags.classifier_format import percentage
from dataset.admin.datasets import DatasetAdmin, import_report_show
from dataset.models import Dataset
from dataset.validation import human_size


def version_link(version: ModelVersion) -> str:
    url = reverse("admin:classifier_modelversion_change", args=[version.pk])
    return format_html('<a href="{}">{}</a>', url, version)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status_progress", "is_active", "backbone", "val_accuracy", "test_accuracy_display",
                    "training_seconds", "created_at")
    list_filter = ("dataset", "status", "is_active", "backbone")
    list_select_related = ("dataset",)
    actions = ["activate_selected", "compare_selected"]
    fields = ("dataset", "number", "status_progress", "is_active", "backbone", "labels", "threshold",
              "training_settings", "training_seconds", "error", "artifact_dir", "created_by", "created_at",
              "started_at", "finished_at")
    readonly_fields = fields
    change_form_template = "admin/classifier/modelversion/change_form.html"

    def has_add_permission(self, request):
        return False  # versions come from Retrain or `manage.py train`

    def has_delete_permission(self, request, obj=None):
        return False  # numbered versions are history: metrics of version N must stay readable

    def get_urls(self):
        return [
            path("<int:pk>/activate/", self.admin_site.admin_view(require_POST(self.activate_view)),
                 name="classifier_modelversion_activate"),
            path("compare/", self.admin_site.admin_view(self.compare_view), name="classifier_modelversion_compare"),
            *super().get_urls(),
        ]

    @admin.display(description="Status")
    def status_progress(self, version):
        if version.status == ModelVersion.Status.TRAINING:
            return f"Training: {version.stage or 'starting'} {version.progress:.0%}"
        return version.get_status_display()

    @admin.display(description="Val accuracy")
    def val_accuracy(self, version):
        return percentage((version.metrics.get("val") or {}).get("accuracy"))

    @admin.display(description="Test accuracy")
    def test_accuracy_display(self, version):
        return percentage(version.test_accuracy())

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        if version is None:  # unknown or malformed id: the admin's own "does not exist" page
            return super().change_view(request, object_id, form_url, extra_context)
        active = selectors.active_version(dataset=version.dataset)
        extra_context = {
            **(extra_context or {}),
            "version": version,
            "report": selectors.version_report(version=version),
            "active_version": active,
            "can_activate": version.status == ModelVersion.Status.READY and not version.is_active
            and self.has_change_permission(request, version),
            "is_rollback": active is not None and version.number < active.number,
            "refresh": version.status in (ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING),
            # Everything on this page is read-only; activation has its own button.
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def activate_view(self, request, pk):
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        self.activate(request, version)
        return HttpResponseRedirect(reverse("admin:classifier_modelversion_change", args=[version.pk]))

    def activate(self, request, version):
        try:
            model_version_activate(version=version)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            self.message_user(request, f"{version} now answers predictions for {version.dataset}.")

    @admin.action(description="Activate (or roll back to) the selected version", permissions=["change"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        self.activate(request, queryset.get())

    @admin.action(description="Compare the two selected versions")
    def compare_selected(self, request, queryset):
        if queryset.count() != 2:
            self.message_user(request, "Select exactly two versions to compare.", messages.ERROR)
            return None
        first, second = queryset.order_by("dataset", "number")
        url = reverse("admin:classifier_modelversion_compare") + "?" + urlencode({"a": first.pk, "b": second.pk})
        return HttpResponseRedirect(url)

    def compare_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        versions = [get_object_or_404(ModelVersion, pk=request.GET.get(key, "")) for key in ("a", "b")] \
            if all(request.GET.get(key, "").isdigit() for key in ("a", "b")) else None
        if versions is None:
            self.message_user(request, "Pick two versions in the list, then “Compare”.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:classifier_modelversion_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Compare {versions[0]} and {versions[1]}",
            "rows": selectors.versions_comparison(versions=versions),
            "versions": versions,
        }
        return TemplateResponse(request, "admin/classifier/modelversion/compare.html", context)


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


admin.site.unregister(Dataset)


@admin.register(Dataset)
class DatasetWithModelsAdmin(DatasetAdmin):
    """The dataset page, plus its model versions and the Retrain action."""

    actions = ["retrain"]
    fields = (*DatasetAdmin.fields, "model_versions")
    readonly_fields = (*DatasetAdmin.readonly_fields, "model_versions")

    @admin.display(description="Model versions")
    def model_versions(self, dataset):
        if not dataset.pk:
            return "–"
        versions = selectors.versions_of(dataset=dataset)[:10]
        if not versions:
            return "None yet: select this dataset in the list and run “Retrain”."
        return format_html_join(
            "", "<div>{} · {} · test accuracy {}{}</div>",
            (
                (
                    version_link(v), v.get_status_display(), percentage(v.test_accuracy()),
                    " · active" if v.is_active else "",
                )
                for v in versions
            ),
        )

    def get_deleted_objects(self, objs, request):
        """Versions cannot be deleted one by one (their numbers are history), but they go with
        their dataset: deleting the dataset needs no separate permission for them."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(ModelVersion._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        datasets_classifier_data_delete(datasets=Dataset.objects.filter(pk=obj.pk))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        datasets_classifier_data_delete(datasets=queryset)
        super().delete_queryset(request, queryset)

    @admin.action(description="Retrain: train a new model version", permissions=["change"])
    def retrain(self, request, queryset):
        for dataset in queryset:
            try:
                version = model_version_request(dataset=dataset, user=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request, format_html("Training {} is queued; its page shows the progress.", version_link(version))
                )


@admin.register(WorkerProcess)
class WorkerProcessAdmin(admin.ModelAdmin):
    """Each queue worker process as it last reported itself, above it the queue depth per cluster
    and the latest failures. Rows are the workers' own; old ones may be deleted."""

    list_display = ("__str__", "cluster", "versions", "jobs_done", "memory", "last_seen", "started_at")
    list_filter = ("cluster", "node")
    change_list_template = "admin/classifier/workerprocess/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="RSS", ordering="rss_bytes")
    def memory(self, worker):
        return human_size(worker.rss_bytes)

    def changelist_view(self, request, extra_context=None):
        context = {"queue_depths": monitoring.queue_depths(), "failures": monitoring.recent_failures()}
        return super().changelist_view(request, {**(extra_context or {}), **context})
