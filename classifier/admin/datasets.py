"""The dataset page with its model versions and the Retrain action."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from classifier import selectors
from classifier.admin.versions import version_link
from classifier.models import ModelVersion
from classifier.services.maintenance import datasets_classifier_data_delete
from classifier.services.training import model_version_request
from classifier.templatetags.classifier_format import percentage
from dataset.admin.datasets import DatasetAdmin
from dataset.models import Dataset

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
