"""The JSON API (OpenAPI docs at /api/v1/docs). Views only translate HTTP to services and back."""

from __future__ import annotations

import logging
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from ninja import File, Form, NinjaAPI, Status
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.files import UploadedFile

from classifier import access, notifications, selectors, selectors_review
from classifier.api_auth import ApiKey, ApiKeyOrStaff, ApiKeyUnlessPage
from classifier.models import PredictionJob
from classifier.schemas import ActiveModel, Error, FeedbackIn, ModelVersions, Prediction, Queued
from classifier.services.limits import RateLimited, TooManyWaits, prediction_wait_hold
from classifier.services.predictions import NoActiveModel, NoDataset, prediction_feedback_give, prediction_job_create
from dataset.validation import human_size

logger = logging.getLogger(__name__)
FAILED_ANSWER = "The model could not answer for this photo; send it again, or another one."


class Api(NinjaAPI):
    def get_openapi_schema(self, **kwargs):
        """The schema as this configuration behaves: without API_KEYS no operation asks for a key."""
        schema = super().get_openapi_schema(**kwargs)
        if not settings.API_KEYS:
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.pop("security", None)
            schema["components"].pop("securitySchemes", None)
        return schema


api = Api(
    title="Coffee Classifier",
    version="1",
    description=(
        "Upload a photo, get its label. Predictions are jobs: POST returns at once (or, with `wait`, "
        "with the answer), GET returns the answer."
    ),
    urls_namespace="api",
    auth=ApiKeyUnlessPage(),
)


@api.exception_handler(AuthenticationError)
def key_missing(request, error):
    return api.create_response(
        request, {"detail": "This API needs a key: send one of the keys you were given in the X-API-Key header."},
        status=401,
    )


@api.exception_handler(NinjaValidationError)
def invalid_request(request, error):
    """Malformed requests get 400 and a sentence, like every other refusal here."""
    problems = "; ".join(
        # numbers in a location are the tags of a union (feedback's `correct`): no request here has a list
        f"{'.'.join(part for part in problem.get('loc', [])[1:] if isinstance(part, str)) or 'request'}: "
        f"{problem.get('msg')}"
        for problem in error.errors
    )
    return api.create_response(request, {"detail": f"Invalid request: {problems}."}, status=400)


@api.exception_handler(InterfaceError)
@api.exception_handler(OperationalError)
def database_unavailable(request, error):
    """The database is down or restarting: say so, and that a retry will do (nothing was stored)."""
    logger.error("The database does not answer: %s", error)
    return api.create_response(
        request, {"detail": "The database does not answer right now; nothing was stored, try again in a moment."},
        status=503,
    )


def session_key(request: HttpRequest) -> str:
    """The browser session's key (the upload page opens one); API clients without a cookie have none."""
    return request.session.session_key or ""


def csrf_refusal(request: HttpRequest) -> str | None:
    """Requests carrying the session cookie come from the upload page and must carry its CSRF token
    too, or another site could post in a visitor's name; API clients without cookies have nothing
    to forge. Returns the reason for a refusal, or None."""
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return None
    refusal = CsrfViewMiddleware(lambda _: None).process_view(request, None, (), {})
    return None if refusal is None else "The page's security token is missing or stale; reload the page."


UPLOAD_FIELDS = {"image", "dataset", "csrfmiddlewaretoken"}


def upload_fields_refusal(request: HttpRequest) -> str | None:
    """Why an upload's form fields cannot be taken, or None: one photo in `image`, at most one
    `dataset`, nothing else (a misspelt “datset” would send the photo to the default dataset's
    model without a word)."""
    unknown = sorted((set(request.POST) | set(request.FILES)) - UPLOAD_FIELDS)
    if unknown:
        names = ", ".join(f"“{name[:40]}”" for name in unknown[:3])
        return (f"Unknown field{'s' if len(unknown) > 1 else ''} {names}: send the photo as “image” and, "
                "optionally, the dataset's slug as “dataset”.")
    if len(request.POST.getlist("dataset")) > 1:
        return "Send at most one “dataset”."
    if len(request.FILES.getlist("image")) != 1:
        return "Send exactly one file in the field “image”."
    return None


def client_address(request: HttpRequest) -> str:
    """Who sent the request: the proxy's word for it only when settings say a proxy is trusted."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.TRUST_X_FORWARDED_FOR and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def no_dataset(slug: str) -> str:
    return f"There is no dataset “{slug or settings.DEFAULT_DATASET_SLUG}”."


def reachable_job(request: HttpRequest, job_id: str) -> PredictionJob | None:
    """The job, if it exists and this caller may reach it (`access.job_reachable`); ids are UUIDs,
    anything else names no job."""
    try:
        job = selectors.prediction_job(job_id=UUID(job_id))
    except ValueError:
        return None
    return job if job is not None and access.job_reachable(request, job) else None


def no_job(job_id: str) -> Status:
    """Unknown, malformed and unreachable ids alike: which jobs exist is nobody else's business."""
    return Status(404, {"detail": f"No prediction with id “{job_id}”."})


def job_awaited(request: HttpRequest, job: PredictionJob, wait: float) -> PredictionJob:
    """The job once answered, or as it stands after `wait` seconds (capped by settings); raises
    TooManyWaits when this process may hold no more waits of this client."""
    if job.status not in PredictionJob.WAITING or not wait > 0:  # NaN waits for nothing too
        return job
    with prediction_wait_hold(client=client_address(request)):
        answer = notifications.job_wait(
            job.pk,
            seconds=min(wait, settings.PREDICTION_LONG_POLL_MAX_SECONDS),
            still_waiting=lambda: selectors.prediction_job_is_waiting(job_id=job.pk),
        )
    if answer is not None:  # what the worker wrote came with the wake-up: no need to read it back
        for name, value in answer.items():
            setattr(job, name, value)
        return job
    return selectors.prediction_job(job_id=job.pk) or job  # deleted meanwhile (purged): as it was


def retry_later(request: HttpRequest, refusal: RateLimited | TooManyWaits, *, status: int):
    """A refusal that passes: its sentence, and when to ask again in `Retry-After`."""
    response = api.create_response(request, {"detail": str(refusal)}, status=status)
    response["Retry-After"] = str(refusal.retry_after)
    return response


def as_prediction(request: HttpRequest, job: PredictionJob) -> dict:
    """The answer as the API shows it, for a job read by `selectors.prediction_job`."""
    photo_url = request.build_absolute_uri(reverse("prediction-image", args=[job.pk]))
    return {
        "id": job.pk,
        "status": job.status,
        "label": job.label or None,
        "confidence": job.confidence,
        # by label: the worker's order (the model's) and the database's (jsonb's) then agree
        "probabilities": dict(sorted((job.probabilities or {}).items())),
        "decision": job.decision or None,
        "version": job.version_number,
        "heatmap": job.heatmap or [],
        # the stored error is for curators (admin, logs); the public answer is a sentence
        "error": FAILED_ANSWER if job.status == PredictionJob.Status.FAILED else None,
        "queued_at": job.queued_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "preprocess_ms": job.preprocess_ms,
        "inference_ms": job.inference_ms,
        "total_ms": job.total_ms(),
        "feedback": job.feedback or None,
        "image_url": photo_url if access.photo_viewable(request, job) else None,
        "shadow": shadow_answer(job) if access.shadow_visible(request) else None,
    }


def shadow_answer(job: PredictionJob) -> dict | None:
    """The shadow's answer stored with the job (read by `selectors.prediction_job`), or None."""
    number = getattr(job, "shadow_version_number", None)
    if number is None or not job.shadow_label:
        return None
    return {"version": number, "label": job.shadow_label, "confidence": job.shadow_confidence,
            "decision": job.shadow_decision or None}


@api.post(
    "/predictions", summary="Send a photo", tags=["predictions"],
    response={200: Prediction, 202: Queued, 400: Error, 401: Error, 403: Error, 404: Error, 429: Error, 503: Error},
)
def prediction_create(request, image: File[UploadedFile], dataset: Form[str] = "", wait: float = 0):
    """Queue a photo (multipart field `image`). Answers 202 with the job's id and URL; with `wait`
    (seconds, at most 30) it answers 200 with the prediction once done, in one request, or 202
    if the time runs out first."""
    if refusal := csrf_refusal(request):
        return Status(403, {"detail": refusal})
    if refusal := upload_fields_refusal(request):
        return Status(400, {"detail": refusal})
    if image.size > settings.MAX_UPLOAD_BYTES:  # refused before it is read into memory
        return Status(400, {"detail": f"“{image.name}” is {human_size(image.size)}; the limit is "
                                      f"{human_size(settings.MAX_UPLOAD_BYTES)}."})
    slug = selectors.dataset_slug(slug=dataset)
    if slug is None:
        return Status(404, {"detail": no_dataset(dataset)})
    try:
        job = prediction_job_create(
            dataset_slug=slug, data=image.read(), name=image.name or "", session_key=session_key(request),
            client=client_address(request),
        )
    except NoDataset:
        return Status(404, {"detail": no_dataset(dataset)})
    except RateLimited as error:
        return retry_later(request, error, status=429)
    except NoActiveModel as error:
        return Status(503, {"detail": str(error)})
    except ValidationError as error:
        return Status(400, {"detail": " ".join(error.messages)})
    try:
        job = job_awaited(request, job, wait)
    except TooManyWaits:
        pass  # the photo is stored and queued: it is answered 202 at once, never refused for a wait
    if job.status not in PredictionJob.WAITING:
        return Status(200, as_prediction(request, job))
    url = request.build_absolute_uri(reverse("api:prediction_get", args=[job.pk]))
    return Status(202, {"id": job.pk, "status": job.status, "url": url})


@api.get("/predictions/{job_id}", summary="Read a prediction", tags=["predictions"],
         response={200: Prediction, 400: Error, 401: Error, 404: Error, 429: Error, 503: Error},
         url_name="prediction_get")
def prediction_get(request, job_id: str, wait: float = 0):
    """A job and, once done, its answer. `wait` (seconds, at most 30) holds the reply until it is;
    past the waits one address (429) or the server (503) may hold at once, ask again after `Retry-After`."""
    job = reachable_job(request, job_id)
    if job is None:
        return no_job(job_id)
    try:
        job = job_awaited(request, job, wait)
    except TooManyWaits as refusal:
        return retry_later(request, refusal, status=429 if refusal.per_client else 503)
    return Status(200, as_prediction(request, job))


@api.post("/predictions/{job_id}/feedback", summary="Say whether it was right", tags=["predictions"],
          response={200: Prediction, 400: Error, 401: Error, 403: Error, 404: Error, 503: Error})
def prediction_feedback(request, job_id: str, feedback: FeedbackIn):
    """Say whether the answer was right; when wrong, name the right label. Only whoever sent the
    photo (its browser session, or a key holder) may."""
    if refusal := csrf_refusal(request):
        return Status(403, {"detail": refusal})
    job = reachable_job(request, job_id)
    if job is None:
        return no_job(job_id)
    if refusal := access.feedback_refusal(request, job):
        return Status(403, {"detail": refusal})
    try:
        job = prediction_feedback_give(job=job, correct=feedback.correct,
                                                label_name="" if feedback.correct else feedback.label)
    except ValidationError as error:
        return Status(400, {"detail": " ".join(error.messages)})
    return Status(200, as_prediction(request, job))  # the service set on it what it wrote


@api.get("/models/active", summary="The model that answers", tags=["models"], response={200: ActiveModel, 400: Error, 401: Error, 404: Error, 503: Error},
         auth=ApiKey())
def model_active(request, dataset: str = ""):
    """The version that answers predictions now (with API_KEYS set, for key holders only: the page needs it not)."""
    target = selectors.prediction_dataset(slug=dataset or None)
    if target is None:
        return Status(404, {"detail": no_dataset(dataset)})
    version = selectors.active_version(dataset=target)
    if version is None:
        return Status(503, {"detail": str(NoActiveModel(target))})
    return Status(200, {
        "dataset": target.slug, "version": version.number, "backbone": version.backbone, "labels": version.labels,
        "threshold": version.threshold, "test_accuracy": version.test_accuracy(),
    })


@api.get("/models", response={200: ModelVersions, 400: Error, 401: Error, 404: Error, 503: Error}, auth=ApiKeyOrStaff())
def model_versions(request, dataset: str = ""):
    """The dataset's versions, newest first, with their scores and which one answers (active) or
    runs beside it (shadow). With API_KEYS set, for key holders and staff."""
    target = selectors.prediction_dataset(slug=dataset or None)
    if target is None:
        return Status(404, {"detail": no_dataset(dataset)})
    return Status(200, {"dataset": target.slug, "versions": selectors_review.versions_scores(dataset=target)})
