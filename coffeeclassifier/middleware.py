"""Response headers Django 5.2 does not set itself, and the request id of every log line."""

from django.conf import settings

from coffeeclassifier import logs


def content_security_policy(get_response):
    """Send CONTENT_SECURITY_POLICY with every response that has none of its own: pages run only
    the scripts and styles this site serves, so an injected one does not run."""

    def middleware(request):
        response = get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

    return middleware


def request_id(get_response):
    """Give each request an id (the client's X-Request-ID when it is a plain token): every line
    logged while it runs carries it, an upload stores it on its job for the worker's lines, and
    the response names it in X-Request-ID."""

    def middleware(request):
        request.request_id = logs.request_id_new(request.headers.get("X-Request-ID"))
        with logs.request_id_bound(request.request_id):
            response = get_response(request)
        response.headers["X-Request-ID"] = request.request_id
        return response

    return middleware
