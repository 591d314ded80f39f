"""Who reaches which job and photo. Three kinds of caller:

- a key holder (API_KEYS set, one of them in X-API-Key): every job, its feedback and its photo;
- the upload page's session (one the page opened): the jobs it sent, their feedback and photos;
- with API_KEYS unset, anyone: the API is open like the page, and a job's unguessable id is
  the pass to its answer. Feedback and photos stay with whoever sent the photo: the session
  that sent it, or, for a photo sent without a session (a script), the callers of the open API.

Staff see photos through the job's view permission, as the admin shows them.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest

from classifier.models import PredictionJob

PAGE_SESSION = "upload_page"  # set in the sessions the upload page opens
FEEDBACK_NOT_YOURS = "Only the browser session that sent this photo can give feedback on it."


def api_key_valid(key: str | None) -> bool:
    """Whether `key` is one of API_KEYS (compared in constant time)."""
    return bool(key) and any(hmac.compare_digest(key.encode(), known.encode()) for known in settings.API_KEYS)


def key_holder(request: HttpRequest) -> bool:
    return api_key_valid(request.headers.get("X-API-Key"))


def page_session(request: HttpRequest) -> bool:
    """Whether the request carries a session the upload page opened (a forged cookie names none)."""
    return bool(request.session.get(PAGE_SESSION))


def sent_by(request: HttpRequest, job: PredictionJob) -> bool:
    return bool(job.session_key) and job.session_key == request.session.session_key


def job_reachable(request: HttpRequest, job: PredictionJob) -> bool:
    """With keys set, a page session reaches only the jobs it sent; key holders and, without
    keys, everyone reach any job by its id."""
    return not settings.API_KEYS or key_holder(request) or sent_by(request, job)


def feedback_refusal(request: HttpRequest, job: PredictionJob) -> str | None:
    """Why this caller may not give feedback on the job, or None. Feedback decides the label a
    curator's *Add to dataset* files the photo under, so a stranger holding the id must not set it."""
    if key_holder(request) or sent_by(request, job):
        return None
    if not job.session_key and not settings.API_KEYS:
        return None  # sent through the open API: its callers are all anonymous alike
    return FEEDBACK_NOT_YOURS


def photo_viewable(request: HttpRequest, job: PredictionJob) -> bool:
    """The session that sent the photo, staff allowed to view jobs, and key holders see it."""
    return sent_by(request, job) or request.user.has_perm("classifier.view_predictionjob") or key_holder(request)


def shadow_visible(request: HttpRequest) -> bool:
    """The shadow version's answer on a job is for curators judging it: staff and key holders."""
    return request.user.is_staff or key_holder(request)


def health_details_visible(request: HttpRequest) -> bool:
    """Queue depth, versions and timings are for operators: staff or key holders. Everyone else
    (a load balancer, a stranger) learns whether the service is well, and why not."""
    return request.user.is_staff or key_holder(request)


def metrics_visible(request: HttpRequest) -> bool:
    """/metrics, like the API: open while API_KEYS is unset; else for staff and key holders, whose
    key may also come as `Authorization: Bearer <key>`, the header Prometheus' scrapes send."""
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    return (
        not settings.API_KEYS or request.user.is_staff or key_holder(request)
        or (scheme.lower() == "bearer" and api_key_valid(bearer.strip()))
    )
