"""Training from the admin: the Train form of a dataset, and a training's progress as JSON for the
version page's bar (static/classifier/training_progress.js)."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from classifier.ml.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.ml.train import TrainSettings
from classifier.models import ModelVersion
from classifier.services.retraining import retrain_schedule_get, retrain_schedule_set
from classifier.services.training import model_version_request
from classifier.workspace import settings_twin, training_progress, training_refusal
from dataset.models import Dataset


class TrainForm(forms.Form):
    """The choices `manage.py train` offers."""

    backbone = forms.ChoiceField(choices=[(name, name) for name in BACKBONES], initial=DEFAULT_BACKBONE,
                                 help_text="The frozen image network the head learns on; larger ones are slower.")
    epochs = forms.IntegerField(min_value=1, max_value=100_000, initial=TrainSettings.epochs,
                                help_text="Full-batch steps of the head.")
    activate_when_better = forms.BooleanField(
        required=False, label="Activate if better",
        help_text="Once trained, it answers predictions if it is right more often than the active version on "
                  "both the test split and the field set, or if no version is active; otherwise it waits for you.",
    )

    def train_settings(self) -> TrainSettings:
        return TrainSettings(backbone=self.cleaned_data["backbone"], epochs=self.cleaned_data["epochs"])


class TrainingViews:
    """The Train form and the progress endpoint, added to the model version admin's URLs."""

    def training_urls(self):
        return [
            path("train/<int:dataset_id>/", self.admin_site.admin_view(self.train_view),
                 name="classifier_modelversion_train"),
            path("<int:pk>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="classifier_modelversion_progress"),
            path("retrain-schedule/<int:dataset_id>/", self.admin_site.admin_view(self.schedule_view),
                 name="classifier_modelversion_retrain_schedule"),
        ]

    def train_view(self, request, dataset_id):
        """GET: the form, or the sentence why this data cannot train. POST: queue the training and
        go to the new version's page; a refusal shows the form again with its sentence."""
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = TrainForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            chosen = form.train_settings()
            twin = settings_twin(dataset=dataset, settings=chosen)
            try:
                version = model_version_request(
                    dataset=dataset, user=request.user, backbone=chosen.backbone, epochs=chosen.epochs,
                    activate_when_better=form.cleaned_data["activate_when_better"],
                )
            except ValidationError as error:
                form.add_error(None, " ".join(error.messages))
            else:
                self.message_user(request, f"Training {version} is queued; this page shows its progress." + (
                    " Once ready, it is activated if it beats the active version on the test split and the "
                    "field set." if version.activate_when_better else ""))
                if twin:
                    self.message_user(request, f"{version} has the same data and settings as {twin}: expect the "
                                      "same model.", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:classifier_modelversion_change", args=[version.pk]))
        default_twin = settings_twin(dataset=dataset, settings=TrainSettings())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Train a new version of {dataset}",
            "dataset": dataset,
            "form": form,
            "refusal": training_refusal(dataset=dataset),
            "twin": default_twin,
        }
        return TemplateResponse(request, "admin/classifier/modelversion/train.html", context,
                                status=400 if form.errors else 200)

    def progress_view(self, request, pk):
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        return JsonResponse(training_progress(version=version))

    def schedule_view(self, request, dataset_id):
        """GET: the dataset's daily retrain, on or off, and whether it activates a better candidate.
        POST: save it and go back to the dataset."""
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            enabled, activate = request.POST.get("enabled") == "1", request.POST.get("activate_when_better") == "1"
            retrain_schedule_set(dataset=dataset, enabled=enabled, activate_when_better=activate)
            self.message_user(request, schedule_sentence(dataset=dataset, enabled=enabled, activate=activate))
            return HttpResponseRedirect(reverse("admin:dataset_dataset_change", args=[dataset.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Retraining of {dataset}",
            "dataset": dataset,
            "schedule": retrain_schedule_get(dataset=dataset),
            "learnt_enough": settings.RETRAIN_SUGGESTED_AFTER,
        }
        return TemplateResponse(request, "admin/classifier/modelversion/retrain_schedule.html", context)


def schedule_sentence(*, dataset: Dataset, enabled: bool, activate: bool) -> str:
    if not enabled:
        return f"{dataset} is retrained only when someone asks."
    return (f"{dataset} is retrained every day once {settings.RETRAIN_SUGGESTED_AFTER} photos came from feedback "
            "or review; " + ("a new version that beats the active one on the test split and the field set is "
                             "activated." if activate else "new versions wait for a curator to activate them."))
