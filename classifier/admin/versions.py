"""Admin for model versions: metrics, activation, rollback, comparison."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from classifier import selectors
from classifier.models import ModelVersion
from classifier.services.training import model_version_activate
from classifier.templatetags.classifier_format import percentage


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
