"""The classifier's parts of admin pages it does not own: the workspace on the admin home, and the
versions block with the Train button on a dataset's page (dataset imports nothing of the classifier;
its templates load this library)."""

from django import template
from django.conf import settings
from django.urls import reverse

from classifier.admin import charts
from classifier.models import ModelVersion
from classifier.reports import threshold_table
from classifier.selectors import versions_of
from classifier.services.retraining import retrain_schedule_get
from classifier.workspace import (
    datasets_overview,
    photos_learnt_since_active,
    retrain_suggested,
    training_progress,
    training_refusal,
)

register = template.Library()

VERSIONS_SHOWN = 10


@register.simple_tag
def workspace_datasets() -> list[dict]:
    return datasets_overview()


@register.inclusion_tag("admin/classifier/dataset_versions.html", takes_context=True)
def dataset_versions(context, dataset) -> dict:
    """The dataset's latest versions (a training under way with its progress), and the Train button
    for those who may train."""
    user = context["request"].user
    versions = list(versions_of(dataset=dataset)[:VERSIONS_SHOWN]) if dataset and dataset.pk else []
    training = next((v for v in versions if v.status in (ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING)),
                    None)
    return {
        "dataset": dataset,
        "versions": versions,
        "training": training,
        "refusal": training_refusal(dataset=dataset) if dataset and dataset.pk else None,
        "can_train": dataset is not None and dataset.pk is not None
        and user.has_perm("classifier.change_modelversion"),
        "train_url": reverse("admin:classifier_modelversion_train", args=[dataset.pk]) if dataset and dataset.pk else "",
        **(retraining(dataset, training) if dataset and dataset.pk else {}),
    }


def retraining(dataset, training) -> dict:
    """What the dataset learnt since its active version, whether a retrain is suggested, and its
    retrain schedule."""
    learnt = photos_learnt_since_active(dataset=dataset)
    return {
        "learnt": learnt,
        "retrain_suggested": retrain_suggested(learnt=learnt, training=training),
        "learnt_enough": settings.RETRAIN_SUGGESTED_AFTER,
        "schedule": retrain_schedule_get(dataset=dataset),
        "schedule_url": reverse("admin:classifier_modelversion_retrain_schedule", args=[dataset.pk]),
    }


@register.inclusion_tag("admin/classifier/modelversion/progress.html")
def training_progress_bar(version) -> dict:
    return {"version": version, "progress": training_progress(version=version),
            "url": reverse("admin:classifier_modelversion_progress", args=[version.pk])}


@register.simple_tag
def roc_chart(curves):
    return charts.roc_chart(curves)


@register.simple_tag
def precision_recall_chart(curves):
    return charts.precision_recall_chart(curves)


@register.simple_tag
def threshold_chart(curves):
    return charts.threshold_chart(curves)


@register.simple_tag
def threshold_rows(curves):
    return threshold_table(curves=curves)


WORKFLOW_ORDER = ("dataset", "classifier")  # curate photos, then train and answer
INTERNAL_APPS = ("django_q",)  # the task queue's own tables: for diagnosing, not for the daily work


@register.simple_tag
def apps_in_workflow_order(app_list) -> dict:
    """The admin's apps with the workflow's first, the queue's internals apart."""
    rank = {label: index for index, label in enumerate(WORKFLOW_ORDER)}
    main = sorted((app for app in app_list if app["app_label"] not in INTERNAL_APPS),
                  key=lambda app: rank.get(app["app_label"], len(rank)))
    return {"main": main, "internals": [app for app in app_list if app["app_label"] in INTERNAL_APPS]}
