"""How much one client may ask of the web: uploads per window, and requests waiting at once."""


from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from classifier.models import PredictionJob

logger = logging.getLogger(__name__)


class RateLimited(Exception):
    """The client sent more photos than the limit allows; `retry_after` says when it may again."""

    def __init__(self, *, limit: int, window: int, retry_after: int):
        super().__init__(
            f"Too many photos: at most {limit} every {window} seconds from one address. "
            f"Try again in {retry_after} s."
        )
        self.retry_after = retry_after


def prediction_rate_check(*, client: str) -> None:
    """Refuse a client's upload past PREDICTION_RATE_LIMIT jobs in the last window (0: no limit).

    The jobs themselves are the record, so the limit holds across processes and machines; two
    uploads racing at the edge may both pass.
    """
    limit, window = settings.PREDICTION_RATE_LIMIT, settings.PREDICTION_RATE_WINDOW_SECONDS
    if not limit or not client:
        return
    now = timezone.now()
    recent = list(
        PredictionJob.objects.filter(client=client, queued_at__gt=now - timezone.timedelta(seconds=window))
        .order_by("-queued_at")
        .values_list("queued_at", flat=True)[:limit]
    )
    if len(recent) >= limit:
        frees_at = recent[-1] + timezone.timedelta(seconds=window)
        raise RateLimited(limit=limit, window=window, retry_after=max(1, math.ceil((frees_at - now).total_seconds())))


class TooManyWaits(Exception):
    """This web process already holds as many waiting requests as it may: from this client
    (`per_client`), or from everyone; the message says so and when to ask again."""

    retry_after = 1  # a wait ends within PREDICTION_LONG_POLL_MAX_SECONDS, most within milliseconds

    def __init__(self, *, per_client: bool):
        if per_client:
            message = (f"Too many waiting requests: at most {settings.PREDICTION_WAITS_PER_CLIENT} at once from one "
                       f"address. Ask again in {self.retry_after} s, or without `wait`.")
        else:
            message = f"The server is holding all the waiting requests it can; ask again in {self.retry_after} s."
        super().__init__(message)
        self.per_client = per_client


_waits_lock = threading.Lock()


_waits: Counter[str] = Counter()  # waiting requests this process holds, by client address


@contextmanager
def prediction_wait_hold(*, client: str) -> Iterator[None]:
    """Count a waiting request of `client` while the block runs, or raise TooManyWaits past
    PREDICTION_WAITS_PER_CLIENT of its own or PREDICTION_WAITS_PER_PROCESS in all (0: no cap).

    A wait holds one of the web process's threads: the caps, kept per process since threads are,
    leave threads free for /healthz, uploads and other clients, however many waits one client sends.
    """
    per_client, per_process = settings.PREDICTION_WAITS_PER_CLIENT, settings.PREDICTION_WAITS_PER_PROCESS
    with _waits_lock:
        if per_client and _waits[client] >= per_client:
            raise TooManyWaits(per_client=True)
        if per_process and _waits.total() >= per_process:
            raise TooManyWaits(per_client=False)
        _waits[client] += 1
    try:
        yield
    finally:
        with _waits_lock:
            _waits[client] -= 1
            if not _waits[client]:
                del _waits[client]
