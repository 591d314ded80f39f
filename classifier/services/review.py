"""The review queue's one write: a curator gives a predicted photo its true label, which puts the
photo in the dataset and in the field set."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from classifier.models import PredictionJob
from classifier.services.field_set import field_set_score_request
from classifier.services.predictions import dataset_label_named, prediction_jobs_add_to_dataset
from dataset.models import DatasetImage
from dataset.services import dataset_images_relabel


def prediction_job_review(*, job: PredictionJob, label_name: str, user) -> DatasetImage:
    """Record `label_name` as the job's true label (with who and when) and return the dataset
    image that holds its photo with that label.

    The photo enters the dataset once however often it is labelled (the dataset refuses the same
    bytes twice). Labelled again, the photo a review put there takes the new label; a photo that
    came by another route (an import, feedback) keeps the label its curators gave it. A field-set
    scoring is queued once this commits.
    """
    job.refresh_from_db(fields=["status"])
    if job.status != PredictionJob.Status.DONE:
        raise ValidationError("Only answered predictions can be reviewed; this one is not answered.")
    label = dataset_label_named(dataset=job.dataset, name=label_name)
    reviewed = {"review_label": label, "reviewed_by": user if user and user.is_authenticated else None,
                "reviewed_at": timezone.now()}
    with transaction.atomic():
        PredictionJob.objects.filter(pk=job.pk).update(**reviewed)
        for name, value in reviewed.items():
            setattr(job, name, value)
        report = prediction_jobs_add_to_dataset(
            jobs=PredictionJob.objects.filter(pk=job.pk), source=DatasetImage.Source.REVIEW
        )
        if report.rejected:
            raise ValidationError(f"The photo cannot enter the dataset: {report.rejected[0][1]}")
        if report.imported:
            image = report.imported[0]
        else:
            image = report.duplicates[0][1]
            if image.source == DatasetImage.Source.REVIEW and image.label_id != label.pk:
                dataset_images_relabel(images=DatasetImage.objects.filter(pk=image.pk), label=label)
                image.label = label
        field_set_score_request(dataset=job.dataset)
    return image
