"""Who may call the API: a key from API_KEYS (none set: open, as the page is), a staff session,
or the upload page's own session."""

from django.conf import settings
from ninja.security import APIKeyHeader

from classifier import access


class ApiKey(APIKeyHeader):
    """With API_KEYS set, a client must send one of them in X-API-Key; without, the API is open,
    as the page is."""

    param_name = "X-API-Key"

    def __call__(self, request):
        if not settings.API_KEYS:
            return True
        return super().__call__(request)

    def authenticate(self, request, key):
        return key if access.api_key_valid(key) else None


class ApiKeyOrStaff(ApiKey):
    """A key, or a staff member's session (the admin's)."""

    def __call__(self, request):
        if request.user.is_staff:
            return True
        return super().__call__(request)


class ApiKeyUnlessPage(ApiKey):
    """A key, or the upload page's session: the page's requests carry a session it opened and,
    for posts, its CSRF token. What such a session then reaches (its own jobs) is `access`'s rule."""

    def __call__(self, request):
        if access.page_session(request):
            return True
        return super().__call__(request)
