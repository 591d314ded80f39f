"""The peer's view: check the photo, store its job row, send the task and wait for its answer."""

import io
import os

from celery.exceptions import TimeoutError as AnswerTimeout
from django.core.files.base import ContentFile
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from PIL import Image

from bench.celery_peer.tasks import predict as predict_task
from classifier.models import PredictionJob
from dataset.models import Dataset

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
ANSWER_TIMEOUT_SECONDS = 110  # below the bench client's 120 s: a late answer is a clear 504


@csrf_exempt
@require_POST
def predict(request):
    upload = request.FILES.get("image")
    if upload is None:
        return JsonResponse({"error": "Send the photo as the multipart field “image”."}, status=400)
    data = upload.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            image.verify()
    except (OSError, SyntaxError, Image.DecompressionBombError):
        image_format = None
    if image_format not in ACCEPTED_FORMATS:
        return JsonResponse({"error": "The file is not a JPEG, PNG or WebP image that can be read."}, status=400)
    job = PredictionJob(dataset=Dataset.objects.get(slug=os.environ.get("BENCH_DATASET", "bench")),
                        image_format=image_format)
    job.image.save(f"upload.{ACCEPTED_FORMATS[image_format]}", ContentFile(data))  # the file, then the row
    result = predict_task.delay(str(job.pk))
    try:
        return JsonResponse(result.get(timeout=ANSWER_TIMEOUT_SECONDS))
    except AnswerTimeout:
        return JsonResponse({"error": "No answer in time; the job stays queued.", "job": str(job.pk)}, status=504)


urlpatterns = [path("predict", predict)]
