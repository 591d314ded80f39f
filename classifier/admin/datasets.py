"""The classifier's actions on the dataset list: train with the default settings, or open the Train
form. The dataset page's versions block and Train button come from the classifier_admin template
tags, loaded by templates/admin/dataset/dataset/change_form.html."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from classifier.admin.versions import version_link
from classifier.services.training import model_version_request
from dataset.admin.datasets import DATASET_ACTIONS

TRAIN_PERMISSION = "classifier.change_modelversion"


@admin.action(description="Retrain: train a new model version with the default settings", permissions=["change"])
def retrain(model_admin, request, queryset):
    if not request.user.has_perm(TRAIN_PERMISSION):
        model_admin.message_user(request, "You may not train model versions.", messages.ERROR)
        return
    for dataset in queryset:
        try:
            version = model_version_request(dataset=dataset, user=request.user)
        except ValidationError as error:
            model_admin.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            model_admin.message_user(
                request, format_html("Training {} is queued; its page shows the progress.", version_link(version))
            )


@admin.action(description="Train with a choice of backbone and epochs…", permissions=["change"])
def train_with_options(model_admin, request, queryset):
    if queryset.count() != 1:
        model_admin.message_user(request, "Select exactly one dataset to train with options.", messages.ERROR)
        return None
    return HttpResponseRedirect(reverse("admin:classifier_modelversion_train", args=[queryset.get().pk]))


DATASET_ACTIONS.extend([retrain, train_with_options])
