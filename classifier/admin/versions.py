"""Admin for model versions: metrics, activation, rollback, comparison."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from classifier import reports, selectors
from classifier.admin.shadow import ShadowViews
from classifier.admin.training import TrainingViews
from classifier.candidates import candidate_report
from classifier.models import ModelVersion
from classifier.services.training import WorseThanActive, model_version_activate
from classifier.templatetags.classifier_format import percentage
from classifier.workspace import training_progress

COMPARED_AT_MOST = 6


def version_link(version: ModelVersion) -> str:
    url = reverse("admin:classifier_modelversion_change", args=[version.pk])
    return format_html('<a href="{}">{}</a>', url, version)


@admin.register(ModelVersion)
class ModelVersionAdmin(TrainingViews, ShadowViews, admin.ModelAdmin):
    list_display = ("__str__", "status_progress", "active_badge", "shadow_badge", "backbone", "val_accuracy",
                    "test_accuracy_display", "training_time", "created_at")
    list_filter = ("dataset", "status", "is_active", "is_shadow", "backbone")
    list_select_related = ("dataset",)
    actions = ["activate_selected", "compare_selected", *ShadowViews.shadow_actions]
    fields = ("dataset", "number", "status_progress", "is_active", "backbone", "labels", "threshold",
              "training_settings", "training_seconds", "error", "artifact_dir", "created_by", "created_at",
              "started_at", "finished_at")
    readonly_fields = fields
    change_form_template = "admin/classifier/modelversion/change_form.html"

    def has_add_permission(self, request):
        return False  # versions come from Train or `manage.py train`

    def has_delete_permission(self, request, obj=None):
        return False  # numbered versions are history: metrics of version N must stay readable

    def get_urls(self):
        return [
            path("<int:pk>/activate/", self.admin_site.admin_view(require_POST(self.activate_view)),
                 name="classifier_modelversion_activate"),
            path("compare/", self.admin_site.admin_view(self.compare_view), name="classifier_modelversion_compare"),
            *self.training_urls(),
            *self.shadow_urls(),
            *super().get_urls(),
        ]

    @admin.display(description="Status")
    def status_progress(self, version):
        if version.status == ModelVersion.Status.TRAINING:
            return training_progress(version=version)["text"]
        return version.get_status_display()

    @admin.display(description="Training time", ordering="training_seconds")
    def training_time(self, version):
        return reports.seconds_text(version.training_seconds) if version.training_seconds is not None else "–"

    @admin.display(description="Answers predictions", ordering="is_active")
    def active_badge(self, version):
        return format_html('<span class="badge-active">{}</span>', "active") if version.is_active else ""

    @admin.display(description="In shadow", ordering="is_shadow")
    def shadow_badge(self, version):
        return format_html('<span class="badge-shadow">{}</span>', "shadow") if version.is_shadow else ""

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
            "title": str(version),
            "subtitle": None,
            "version": version,
            "report": reports.version_report(version=version),
            "candidate": candidate_report(version=version),
            **self.shadow_context(request, version),
            "settings_rows": settings_rows(version),
            "active_version": active,
            "can_activate": version.status == ModelVersion.Status.READY and not version.is_active
            and self.has_change_permission(request, version),
            "is_rollback": active is not None and version.number < active.number,
            "in_progress": version.status in (ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def activate_view(self, request, pk):
        """Activate; a version that scores worse than the active one gets a page that shows how,
        and activates only when that page's button is pressed (`confirmed_worse`)."""
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        try:
            self.activate(request, version, confirmed_worse=request.POST.get("confirmed_worse") == "1")
        except WorseThanActive as refusal:
            context = {**self.admin_site.each_context(request), "opts": self.model._meta, "version": version,
                       "title": f"Activate {version} although it scores worse?", "candidate": refusal.report}
            return TemplateResponse(request, "admin/classifier/modelversion/activate_confirm.html", context)
        return HttpResponseRedirect(reverse("admin:classifier_modelversion_change", args=[version.pk]))

    def activate(self, request, version, *, confirmed_worse: bool = False):
        """Activate and say so; a refusal becomes a message, except WorseThanActive, for the caller."""
        try:
            model_version_activate(version=version, user=request.user, confirmed_worse=confirmed_worse)
        except WorseThanActive:
            raise
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            self.message_user(request, f"{version} now answers predictions for {version.dataset}.")

    @admin.action(description="Activate (or roll back to) the selected version", permissions=["change"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = queryset.get()
        try:
            self.activate(request, version)
        except WorseThanActive as refusal:
            self.message_user(request, f"{refusal.message} Activate it from its page to confirm.", messages.ERROR)

    @admin.action(description="Compare the selected versions")
    def compare_selected(self, request, queryset):
        if not 2 <= queryset.count() <= COMPARED_AT_MOST:
            self.message_user(request, f"Select 2 to {COMPARED_AT_MOST} versions to compare.", messages.ERROR)
            return None
        keys = queryset.order_by("dataset", "number").values_list("pk", flat=True)
        url = reverse("admin:classifier_modelversion_compare") + "?" + urlencode({"v": list(keys)}, doseq=True)
        return HttpResponseRedirect(url)

    def compare_view(self, request):
        """?v=1&v=2…: the versions side by side, oldest first (?a=&b= as well, for older links)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        keys = request.GET.getlist("v") or [request.GET.get(key, "") for key in ("a", "b")]
        if not 2 <= len(keys) <= COMPARED_AT_MOST or not all(key.isdigit() for key in keys):
            self.message_user(request, f"Pick 2 to {COMPARED_AT_MOST} versions in the list, then “Compare”.",
                              messages.ERROR)
            return HttpResponseRedirect(reverse("admin:classifier_modelversion_changelist"))
        versions = [get_object_or_404(ModelVersion.objects.select_related("dataset"), pk=key) for key in keys]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Compare " + ", ".join(map(str, versions)),
            "rows": reports.versions_comparison(versions=versions),
            "changed": reports.answers_changed(versions=versions)
            if len({v.dataset_id for v in versions}) == 1 else None,
            "candidates": [report for version in versions if (report := candidate_report(version=version))],
            "versions": versions,
        }
        return TemplateResponse(request, "admin/classifier/modelversion/compare.html", context)


def settings_rows(version: ModelVersion) -> list[tuple[str, str]]:
    """The version's settings and files, each as a sentence-sized value (no raw JSON)."""
    training = version.training_settings
    head = version.metrics.get("head") or {}
    rows = [
        ("Backbone", version.backbone),
        ("Labels, in output order", ", ".join(version.labels) or "–"),
        ("Threshold", f"{version.threshold:.2f} on P({version.labels[1]})" if version.threshold is not None
         and len(version.labels) == 2 else "highest probability"),
        ("Epochs (full-batch steps of the head)", str(training.get("epochs", "–"))),
        ("L2 penalties tried", ", ".join(f"{value:g}" for value in training.get("l2_grid", [])) or "–"),
        ("L2 chosen on validation", f"{head['l2']:g}" if "l2" in head else "–"),
        ("Mirrored photos in training", "yes" if training.get("flip") else "no"),
        ("Augmented views per photo", str(training.get("augment", 0))),
        ("Threshold chosen on validation", "yes" if training.get("choose_threshold") else "no, 0.5"),
        ("Wanted accuracy of answers (else “unsure”)", percentage(training.get("unsure_precision"))),
        ("Training time", reports.seconds_text(version.training_seconds) if version.training_seconds else "–"),
        ("Model file (TFLite)", filesizeformat(version.metrics["tflite_bytes"]) if "tflite_bytes" in version.metrics
         else "–"),
        ("TFLite against Keras, largest difference", f"{version.metrics['parity_max_abs_diff']:.1e}"
         if version.metrics.get("parity_max_abs_diff") is not None else "–"),
        ("Files", version.artifact_dir),
        ("Requested by", str(version.created_by or "–")),
        ("Requested", date_format(version.created_at, "DATETIME_FORMAT") if version.created_at else "–"),
        ("Finished", date_format(version.finished_at, "DATETIME_FORMAT") if version.finished_at else "–"),
    ]
    return rows
