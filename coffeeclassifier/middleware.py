"""Response headers Django 5.2 does not set itself."""

from django.conf import settings


def content_security_policy(get_response):
    """Send CONTENT_SECURITY_POLICY with every response that has none of its own: pages run only
    the scripts and styles this site serves, so an injected one does not run."""

    def middleware(request):
        response = get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

    return middleware
