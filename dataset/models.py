import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in URLs and on the command line.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Label(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "dataset", name="label_name_unique_per_dataset"),
        ]

    def __str__(self):
        return self.name


def image_upload_to(instance: "DatasetImage", filename: str) -> str:
    """Content-addressed: one file per distinct photo and dataset, named by its sha256."""
    extension = filename.rsplit(".", 1)[-1].lower()
    return f"datasets/{instance.dataset_id}/{instance.sha256[:2]}/{instance.sha256}.{extension}"


class DatasetImage(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        VAL = "val", "Validation"
        TEST = "test", "Test"
        UNASSIGNED = "unassigned", "Unassigned"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        IMPORT = "import", "Import"
        FEEDBACK = "feedback", "Feedback"
        REVIEW = "review", "Review"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images")
    label = models.ForeignKey(
        # RESTRICT: a label in use cannot be deleted alone, but goes with its dataset
        Label, on_delete=models.RESTRICT, null=True, blank=True, related_name="images",
        help_text="Empty means unlabelled: the image is kept but not used for training.",
    )
    file = models.FileField(upload_to=image_upload_to, max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, editable=False)
    # 64-bit difference hash as 16 hex digits: close hashes mean the same photo resized or re-encoded.
    perceptual_hash = models.CharField(max_length=16, editable=False)
    image_format = models.CharField(max_length=10, editable=False)
    width = models.PositiveIntegerField(editable=False)
    height = models.PositiveIntegerField(editable=False)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.UNASSIGNED)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    excluded = models.BooleanField(default=False, help_text="Excluded images are kept but never used for training.")
    exclusion_reason = models.CharField(max_length=255, blank=True)
    group = models.CharField(
        max_length=50, blank=True, db_index=True,
        help_text="A short tag of what the photo shows (matcha, latte_art…): evaluations report accuracy per group.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="image_sha256_unique_per_dataset"),
        ]
        indexes = [models.Index(fields=["dataset", "split", "label"])]

    def __str__(self):
        return self.original_name or self.sha256[:12]


def import_archive_upload_to(instance: "ImportRun", filename: str) -> str:
    """An unguessable name per run: archives of many curators wait side by side."""
    return f"imports/{uuid.uuid4().hex}.zip"


class ImportRun(models.Model):
    """An import that runs on the queue: what to import, how far it got, and what came of it.

    The archive waits under MEDIA_ROOT/imports/ while the run is queued or running, and is
    deleted when it ends, whatever the outcome.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="import_runs")
    archive = models.FileField(upload_to=import_archive_upload_to, max_length=255, blank=True)
    archive_name = models.CharField(max_length=255, help_text="What the curator called it.")
    label = models.ForeignKey(
        Label, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="For files outside a label folder.",
    )
    split = models.CharField(max_length=10)
    source = models.CharField(max_length=10, choices=DatasetImage.Source.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    rejections = models.JSONField(default=list, blank=True, help_text="Why each rejected file was refused.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Import of “{self.archive_name}” into {self.dataset}"
