"""Shadow mode on the model versions' admin: start and stop actions (on the list, and as the
version page's buttons); the page's shadow report is `templates/admin/classifier/modelversion/_shadow.html`."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from classifier.models import ModelVersion
from classifier.services.shadow import model_version_shadow_start, model_version_shadow_stop
from classifier.shadow_selectors import shadow_report


class ShadowViews:
    """The start and stop actions and views, added to the model version admin."""

    shadow_actions = ["shadow_start_selected", "shadow_stop_selected"]

    def shadow_urls(self):
        return [
            path("<int:pk>/shadow/start/", self.admin_site.admin_view(require_POST(self.shadow_start_view)),
                 name="classifier_modelversion_shadow_start"),
            path("<int:pk>/shadow/stop/", self.admin_site.admin_view(require_POST(self.shadow_stop_view)),
                 name="classifier_modelversion_shadow_stop"),
        ]

    def shadow_context(self, request, version: ModelVersion) -> dict:
        return {
            "shadow": shadow_report(version=version),
            # a shadow runs beside an active version: without one there is nothing to shadow
            "can_shadow": version.status == ModelVersion.Status.READY and not version.is_active
            and version.dataset.model_versions.filter(is_active=True).exists()
            and self.has_change_permission(request, version),
        }

    def shadow_start(self, request, version):
        try:
            model_version_shadow_start(version=version, user=request.user)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            self.message_user(request, f"{version} now runs in shadow beside the active version of {version.dataset}: "
                                       "its answers are stored with the jobs, never sent.")

    def shadow_stop(self, request, version):
        try:
            model_version_shadow_stop(dataset=version.dataset)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            self.message_user(request, f"{version} no longer runs in shadow; the answers it gave stay with their jobs.")

    def shadow_view(self, request, pk, act):
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        act(request, version)
        return HttpResponseRedirect(reverse("admin:classifier_modelversion_change", args=[version.pk]))

    def shadow_start_view(self, request, pk):
        return self.shadow_view(request, pk, self.shadow_start)

    def shadow_stop_view(self, request, pk):
        return self.shadow_view(request, pk, self.shadow_stop)

    @admin.action(description="Run the selected version in shadow beside the active one", permissions=["change"])
    def shadow_start_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to run in shadow.", messages.ERROR)
            return
        self.shadow_start(request, queryset.get())

    @admin.action(description="Stop the shadowing of the selected versions", permissions=["change"])
    def shadow_stop_selected(self, request, queryset):
        shadowing = list(queryset.filter(is_shadow=True).select_related("dataset"))
        if not shadowing:
            self.message_user(request, "None of the selected versions is in shadow.", messages.ERROR)
        for version in shadowing:
            self.shadow_stop(request, version)
