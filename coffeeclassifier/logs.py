"""Log lines a machine can read: the request id that follows an upload from the web into the
worker that answers it, and `LOG_FORMAT=json`'s one JSON object per line."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# What a client may name its own request with (X-Request-ID); anything else gets a fresh id.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# The attributes every LogRecord has: anything else on a record came from `extra=` and is a field.
# Formatters read the request id when they format, in the thread that logs: a handler that copies
# only the formatter (tqdm's logging redirect) keeps it.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def request_id() -> str:
    """The id of the request (web) or job (worker) this code runs for; "" outside of both."""
    return _request_id.get()


def request_id_new(offered: str | None = None) -> str:
    """The client's own id when it is a short plain token, else a fresh random one."""
    return offered if offered and REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


@contextlib.contextmanager
def request_id_bound(value: str) -> Iterator[None]:
    """Every line logged inside the block, in this thread or task, carries `value`."""
    token = _request_id.set(value)
    try:
        yield
    finally:
        _request_id.reset(token)


class PlainFormatter(logging.Formatter):
    """The format's `%(request_id)s` is the current request id ("-" outside of one)."""

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = _request_id.get() or "-"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the
    fields given with `extra=`, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id.get(),
        }
        line.update({key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(*, log_format: str, level: str, django_level: str) -> dict:
    """The LOGGING setting: every line to the console in `log_format` ("plain" or "json") with its
    request id, at `level`; Django's own loggers at `django_level`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "()": "coffeeclassifier.logs.PlainFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s",
            },
            "json": {"()": "coffeeclassifier.logs.JsonFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"level": django_level},
            # TensorFlow's and absl's own start-up and export chatter ("Assets written to …")
            "tensorflow": {"level": "WARNING"},
            "absl": {"level": "WARNING"},
        },
    }
