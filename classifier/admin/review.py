"""The review queue: a grid of predicted photos, the most useful to label first, labelled with a
click or a key without leaving the page; below it how each version does on the field set."""

import json
import uuid

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from classifier import selectors_review
from classifier.models import PredictionJob, ReviewItem
from classifier.services.review import prediction_job_review
from dataset.imaging import thumbnail_jpeg
from dataset.models import Dataset
from dataset.selectors import file_read

QUEUE_SIZE = 120
THUMBNAIL_SIDE = 220
# Photos a curator skipped stay out of the queue for their session (up to this many, the latest).
SKIPPED_SESSION_KEY = "review_skipped"
SKIPPED_KEPT = 2000


def refusal(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@admin.register(ReviewItem)
class ReviewQueueAdmin(admin.ModelAdmin):
    """Its list is the review grid; labelling goes through a JSON endpoint (`label_view`)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("classifier.view_predictionjob")

    def can_label(self, request) -> bool:
        """Labelling adds photos to the dataset: the permission the job list's Add to dataset asks."""
        return request.user.has_perm("dataset.add_datasetimage")

    def get_urls(self):
        return [
            path("label/", self.admin_site.admin_view(require_POST(self.label_view)),
                 name="classifier_reviewitem_label"),
            path("<uuid:pk>/thumbnail/", self.admin_site.admin_view(self.thumbnail_view),
                 name="classifier_reviewitem_thumbnail"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise Http404
        datasets = list(Dataset.objects.order_by("name"))
        wanted = request.GET.get("dataset") or settings.DEFAULT_DATASET_SLUG
        dataset = next((d for d in datasets if d.slug == wanted), datasets[0] if datasets else None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Review queue",
            "datasets": datasets,
            "dataset": dataset,
            "can_label": self.can_label(request),
        }
        if dataset is not None:
            jobs = selectors_review.review_queue(
                dataset=dataset, skipped=request.session.get(SKIPPED_SESSION_KEY, []), limit=QUEUE_SIZE
            )
            context.update(
                jobs=jobs,
                labels=list(dataset.labels.order_by("name").values_list("name", flat=True)),
                waiting=selectors_review.review_waiting_counts(dataset=dataset),
                field_scores=selectors_review.field_scores_latest(dataset=dataset),
                field_scoring=selectors_review.field_scoring_latest(dataset=dataset),
                field_photos=selectors_review.field_jobs(dataset=dataset).count(),
            )
        return TemplateResponse(request, "admin/classifier/review/queue.html", {**context, **(extra_context or {})})

    def label_view(self, request):
        """POST {"job": id, "label": name} labels the job; {"job": id, "skip": true} leaves it out of
        this session's queue. JSON either way; 4xx with an "error" sentence when refused."""
        if not (self.has_view_permission(request) and self.can_label(request)):
            return refusal("You may not add photos to datasets.", status=403)
        try:
            body = json.loads(request.body)
            job_id = str(uuid.UUID(str(body["job"])))
        except (ValueError, TypeError, KeyError):
            return refusal('Send JSON: {"job": "<prediction id>", "label": "<label name>"} or {"job": …, "skip": true}.')
        job = PredictionJob.objects.filter(pk=job_id).select_related("dataset").first()
        if job is None:
            return refusal(f"No prediction {job_id}.", status=404)
        if body.get("skip") is True:
            skipped = [*request.session.get(SKIPPED_SESSION_KEY, []), job_id][-SKIPPED_KEPT:]
            request.session[SKIPPED_SESSION_KEY] = skipped
            return JsonResponse({"job": job_id, "skipped": True})
        if not isinstance(body.get("label"), str):
            return refusal("Name the photo's label, or send “skip”: true.")
        try:
            image = prediction_job_review(job=job, label_name=body["label"], user=request.user)
        except ValidationError as error:
            return refusal(" ".join(error.messages))
        return JsonResponse({
            "job": job_id, "label": image.label.name if image.label else None, "image": image.pk,
            "image_url": reverse("admin:dataset_datasetimage_change", args=[image.pk]),
        })

    def thumbnail_view(self, request, pk):
        if not self.has_view_permission(request):
            raise Http404
        job = get_object_or_404(PredictionJob, pk=pk)
        try:
            data = file_read(file=job.image)
        except FileNotFoundError:
            raise Http404("The photo is gone (purged).") from None
        response = HttpResponse(thumbnail_jpeg(data, side=THUMBNAIL_SIDE), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=3600"
        return response
