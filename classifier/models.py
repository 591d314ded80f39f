from django.conf import settings
from django.db import models
from django.db.models import Q

from dataset.models import Dataset


class ModelVersion(models.Model):
    """One numbered training of a dataset. Once ready, only `is_active` ever changes."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=20, blank=True)
    progress = models.FloatField(default=0.0)
    backbone = models.CharField(max_length=40)
    training_settings = models.JSONField(default=dict)
    labels = models.JSONField(default=list, help_text="Class names, in the order of the model's outputs.")
    metrics = models.JSONField(default=dict)
    threshold = models.FloatField(null=True, blank=True)
    artifact_dir = models.CharField(max_length=255, help_text="Relative to MEDIA_ROOT.")
    error = models.TextField(blank=True)
    training_seconds = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="version_number_unique_per_dataset"),
            models.UniqueConstraint(
                fields=["dataset"], condition=Q(is_active=True), name="one_active_version_per_dataset"
            ),
        ]

    def __str__(self):
        return f"{self.dataset.slug} v{self.number}"

    def test_accuracy(self) -> float | None:
        return (self.metrics.get("test") or {}).get("accuracy")
