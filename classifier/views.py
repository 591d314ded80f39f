"""The upload page and the few plain views beside the JSON API."""

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from classifier import access, monitoring, selectors
from classifier.models import PredictionJob
from dataset.validation import CONTENT_TYPES

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format
PUBLIC_HEALTH = ("ok", "detail", "database", "broker")  # whether each part answers, not how much it holds


@require_GET
def index(request):
    if not access.page_session(request):
        request.session[access.PAGE_SESSION] = True  # the page's history is this browser session's own
        request.session.save()
    named = request.GET.get("dataset")
    dataset = selectors.prediction_dataset(slug=named)
    version = selectors.active_version(dataset=dataset) if dataset else None
    context = {
        "dataset": dataset,
        "unknown_dataset": named if named and dataset is None else None,
        "version": version,
        "labels": version.labels if version else [],
        "recent": selectors.recent_predictions(session_key=request.session.session_key),
        "accept": ",".join(sorted(set(CONTENT_TYPES.values()))),
    }
    # a dataset the address names but that does not exist is not found; one without a model is not ready yet
    status = 200 if version else 404 if context["unknown_dataset"] else 503
    return render(request, "classifier/index.html", context, status=status)


@cache_control(private=True, max_age=3600)
@require_GET
def prediction_image(request, job_id):
    """The uploaded photo, to those `access.photo_viewable` names, never as anything executable."""
    job = get_object_or_404(PredictionJob, pk=job_id)
    if not access.photo_viewable(request, job):
        raise Http404
    response = FileResponse(job.image.open("rb"), content_type=CONTENT_TYPES[job.image_format])
    response["Content-Disposition"] = "inline"
    return response


@cache_control(max_age=86400)
@require_GET
def favicon(request):
    """Browsers ask /favicon.ico of pages that name no icon (the admin's, the API docs'): the site's icon."""
    return redirect(static("classifier/favicon.svg"))


@never_cache
@require_GET
def healthz(request):
    """200 when the service answers photos, 503 with a sentence when it cannot; details for
    operators (`access.health_details_visible`)."""
    report = selectors.health(stall_seconds=settings.PREDICTION_STALL_SECONDS)
    if not access.health_details_visible(request):
        report = {key: value for key, value in report.items() if key in PUBLIC_HEALTH}
    return JsonResponse(report, status=200 if report["ok"] else 503)


@never_cache
@require_GET
def metrics(request):
    """Prometheus' scrape of this machine's processes (`access.metrics_visible` says who may)."""
    if not access.metrics_visible(request):
        return JsonResponse({"detail": "Metrics need a key: send one in X-API-Key or as a Bearer token."}, status=401)
    return HttpResponse(monitoring.metrics_exposition(), content_type=METRICS_CONTENT_TYPE)
