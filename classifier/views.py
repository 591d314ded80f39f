"""The upload page and the few plain views beside the JSON API."""

from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from classifier import selectors
from classifier.api import PAGE_SESSION
from classifier.models import PredictionJob
from dataset.services import CONTENT_TYPES


@require_GET
def index(request):
    if not request.session.get(PAGE_SESSION):
        request.session[PAGE_SESSION] = True  # the page's history is this browser session's own
        request.session.save()
    dataset = selectors.prediction_dataset(slug=request.GET.get("dataset"))
    version = selectors.active_version(dataset=dataset) if dataset else None
    context = {
        "dataset": dataset,
        "version": version,
        "labels": version.labels if version else [],
        "recent": selectors.recent_predictions(session_key=request.session.session_key),
        "accept": ",".join(sorted(set(CONTENT_TYPES.values()))),
    }
    return render(request, "classifier/index.html", context, status=200 if version else 503)


@cache_control(private=True, max_age=3600)
@require_GET
def prediction_image(request, job_id):
    """The uploaded photo, to the session that sent it (or staff), never as anything executable."""
    job = get_object_or_404(PredictionJob, pk=job_id)
    owner = job.session_key and job.session_key == request.session.session_key
    if not owner and not request.user.is_staff:
        raise Http404
    response = FileResponse(job.image.open("rb"), content_type=CONTENT_TYPES[job.image_format])
    response["Content-Disposition"] = "inline"
    return response


@never_cache
@require_GET
def healthz(request):
    report = selectors.health()
    return JsonResponse(report, status=200 if report["ok"] else 503)
