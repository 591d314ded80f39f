import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dataset.models import Dataset


class ModelVersion(models.Model):
    """One numbered training of a dataset. Once ready, only its state flags `is_active` and
    `is_shadow` ever change."""

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
    is_shadow = models.BooleanField(
        default=False, help_text="Run by the workers beside the active version on each live photo; its answers "
        "are stored with the jobs, never returned to the sender.",
    )
    activate_when_better = models.BooleanField(
        default=False, help_text="Requested by a scheduled retrain: activated once ready only if it beats the active "
        "version on both the test split and the field set.",
    )
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
            models.UniqueConstraint(
                fields=["dataset"], condition=Q(is_shadow=True), name="one_shadow_version_per_dataset"
            ),
            models.CheckConstraint(
                condition=~(Q(is_active=True) & Q(is_shadow=True)), name="shadow_version_is_not_active"
            ),
        ]

    def __str__(self):
        return f"{self.dataset.slug} v{self.number}"

    def test_accuracy(self) -> float | None:
        return (self.metrics.get("test") or {}).get("accuracy")


class Activation(models.Model):
    """Who made a version the one that answers its dataset, when, in place of which: the history of
    activations and rollbacks, which the versions themselves (immutable) do not hold."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="activations")
    previous = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(default=timezone.now)
    confirmed_worse = models.BooleanField(
        default=False, help_text="It scored worse than the version it replaced, and was activated after a second confirmation.",
    )

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.version} activated"


class FieldScoring(models.Model):
    """One scoring of a dataset's ready versions on its field set. At most one per dataset waits
    queued (the database enforces it): labelled photos arriving meanwhile are scored by it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="field_scorings")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    photos = models.PositiveIntegerField(default=0, help_text="Photos of the field set when it ran.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"], condition=Q(status="queued"), name="one_queued_field_scoring_per_dataset"
            ),
        ]

    def __str__(self):
        return f"Field scoring of {self.dataset} ({self.status})"


class FieldScore(models.Model):
    """How one version did on the field set (real traffic whose true label is known) at one
    scoring; the latest row per version is its current figure. Versions themselves never change."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="field_scores")
    scoring = models.ForeignKey(FieldScoring, on_delete=models.CASCADE, related_name="scores")
    photos = models.PositiveIntegerField(help_text="Photos scored.")
    accuracy = models.FloatField(null=True, blank=True)
    per_label = models.JSONField(default=dict, help_text="{label: {precision, recall, f1, support}}.")
    per_group = models.JSONField(default=dict, help_text="{group: {count, accuracy}}, worst first.")
    left_out = models.JSONField(
        default=dict, help_text="Field photos not scored, and why: seen in its training, or a label it does not know.",
    )
    scored_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-scored_at", "-id"]

    def __str__(self):
        return f"{self.version} on {self.photos} field photos"


class FieldAnswer(models.Model):
    """What one version answers for one field photo, computed once: neither a version nor a photo
    ever changes, so a scoring only runs the photos a version has not answered yet. Its true
    label is read at scoring time (a review may correct it)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="field_answers")
    job = models.ForeignKey("PredictionJob", on_delete=models.CASCADE, related_name="field_answers")
    sha256 = models.CharField(max_length=64, help_text="The photo's content hash: its group in the dataset, if any.")
    seen_in_training = models.BooleanField(
        default=False, help_text="The version trained or was calibrated on this photo: it is not scored on it."
    )
    probabilities = models.JSONField(default=list, help_text="Per label, in the version's label order.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "job"], name="one_field_answer_per_version_and_job")]

    def __str__(self):
        return f"{self.version} on {self.job_id}"


def prediction_upload_to(instance: "PredictionJob", filename: str) -> str:
    """Named by the job's random UUID: nothing in the name comes from the user."""
    extension = filename.rsplit(".", 1)[-1].lower()
    return f"predictions/{instance.pk}.{extension}"


class PredictionJob(models.Model):
    """One photo someone asked about; its row is the record of truth for the answer."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    WAITING = (Status.QUEUED, Status.RUNNING)  # not answered yet

    class Decision(models.TextChoices):
        ANSWERED = "answered", "Answered"
        UNSURE = "unsure", "Unsure"

    class Feedback(models.TextChoices):
        NONE = "", "None"
        CORRECT = "correct", "Correct"
        WRONG = "wrong", "Wrong"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="prediction_jobs")
    image = models.FileField(upload_to=prediction_upload_to, max_length=255)
    image_format = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    label = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(default=dict, blank=True)
    decision = models.CharField(
        max_length=10, choices=Decision.choices, blank=True,
        help_text="“Unsure” when the answer's confidence is below what its version trusts (its unsure_below); "
        "blank for jobs answered before versions had one.",
    )
    heatmap = models.JSONField(default=list, blank=True, help_text="Class activation map of the answer, 0..1.")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.RESTRICT, related_name="prediction_jobs"
    )
    # The shadow version's answer on the same pixels, written after the answer; never sent to the sender.
    shadow_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.RESTRICT, related_name="shadow_jobs"
    )
    shadow_label = models.CharField(max_length=100, blank=True)
    shadow_confidence = models.FloatField(null=True, blank=True)
    shadow_decision = models.CharField(
        max_length=10, choices=Decision.choices, blank=True,
        help_text="The shadow's own decision: “unsure” below the confidence its version trusts.",
    )
    shadow_probabilities = models.JSONField(default=dict, blank=True)
    shadow_ms = models.FloatField(
        null=True, blank=True, help_text="What the shadow's answer cost its worker: inference, and a decode "
        "when it takes other pixels than the active version.",
    )
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # When it was last handed to the broker; requeue_stale looks at this, never at queued_at.
    enqueued_at = models.DateTimeField(default=timezone.now, db_index=True)
    requeues = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    preprocess_ms = models.FloatField(null=True, blank=True)
    inference_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(
        max_length=100, blank=True,
        help_text="The machine (NODE_NAME) and process that took the job last: the one that answered it.",
    )
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    request_id = models.CharField(
        max_length=64, blank=True, help_text="The upload's request id, on the web's and the worker's log lines."
    )
    client = models.CharField(max_length=64, blank=True, help_text="The sender's address, for the upload rate limit.")
    feedback = models.CharField(max_length=10, choices=Feedback.choices, blank=True, default=Feedback.NONE)
    feedback_label = models.ForeignKey(
        "dataset.Label", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    feedback_at = models.DateTimeField(null=True, blank=True)
    # A curator's verdict in the review queue: the photo's true label, above any feedback.
    review_label = models.ForeignKey(
        "dataset.Label", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The true label a curator gave in the review queue.",
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["status", "queued_at"]), models.Index(fields=["client", "queued_at"])]

    def __str__(self):
        return f"{self.pk} ({self.status})"

    def total_ms(self) -> float | None:
        """From upload to answer, as the person who sent the photo waited for it."""
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.queued_at).total_seconds() * 1000, 1)


class ReviewItem(PredictionJob):
    """The review queue's entry in the admin: prediction jobs seen as photos to label."""

    class Meta:
        proxy = True
        verbose_name = "review queue photo"
        verbose_name_plural = "review queue"


class WorkerProcess(models.Model):
    """A queue worker process as it last reported itself (at most every WORKER_HEARTBEAT_SECONDS,
    after a job): what the admin's Workers page shows. Rows of dead processes stay, ageing."""

    node = models.CharField(max_length=80, help_text="The machine (NODE_NAME).")
    pid = models.PositiveIntegerField()
    cluster = models.CharField(max_length=40)
    versions = models.CharField(max_length=255, blank=True, help_text="The model versions it holds in memory.")
    shadow_bytes = models.BigIntegerField(
        default=0, help_text="How much its resident memory grew when it loaded the shadow version it holds; 0: none."
    )
    jobs_done = models.PositiveIntegerField(default=0)
    rss_bytes = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen"]
        verbose_name_plural = "worker processes"
        constraints = [models.UniqueConstraint(fields=["node", "pid"], name="one_row_per_worker_process")]

    def __str__(self):
        return f"{self.node}:{self.pid}"
