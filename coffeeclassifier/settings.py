"""Settings, read from the environment with safe local defaults.

Local development needs no variable at all: SQLite and the ORM broker under `var/`.
Production sets DEBUG=0, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

import os
import socket
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from coffeeclassifier.environment import env_bool, env_int, env_list
from coffeeclassifier.logs import logging_config
from coffeeclassifier.redis_connections import fail_fast_pool

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0 (e.g. a 50-character random string).")
    SECRET_KEY = "django-insecure-local-development-only-never-use-in-production"
if not DEBUG and SECRET_KEY.startswith("django-insecure-"):
    # Django's own mark of a key made for development (startproject's, or the one above): sessions,
    # CSRF tokens and password resets signed with a published key can be forged.
    raise ImproperlyConfigured(
        "SECRET_KEY starts with “django-insecure-”: it is a development key; with DEBUG=0 set a long random one."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # its API docs page from this site's static files, not a CDN the CSP would refuse
    "dataset",
    "classifier",  # before django_q: its `qcluster` command is the one that runs
    "django_q",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "coffeeclassifier.middleware.request_id",
    "coffeeclassifier.middleware.content_security_policy",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


ROOT_URLCONF = "coffeeclassifier.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "coffeeclassifier.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)  # the default and the test database live there; a fresh clone has no var/
    # The web process and the queue cluster write concurrently: WAL lets readers go on while one
    # writes, IMMEDIATE takes the write lock up front instead of failing half-way with "locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so that the queue cluster a test starts can open the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# WhiteNoise serves static files under every server (gunicorn too); with DEBUG on it reads them
# from the apps and static/ directly, so `collectstatic` is only for production.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Uploaded and imported photos and model artifacts. Never served as public static files: dataset
# images are shown to staff through a view that checks permissions and sets the content type.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# Limits applied by the one image-validation service to every image that enters.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000)
# Limits for zip imports (admin and command).
MAX_IMPORT_ZIP_BYTES = env_int("MAX_IMPORT_ZIP_BYTES", 2 * 1024 * 1024 * 1024)
MAX_IMPORT_ZIP_MEMBERS = env_int("MAX_IMPORT_ZIP_MEMBERS", 20_000)
MAX_IMPORT_ZIP_RATIO = env_int("MAX_IMPORT_ZIP_RATIO", 100)
# What a whole archive may expand to: photos barely compress, so twice the archive's own limit
# leaves room for PNG and BMP while a zip bomb's shared or repeated data is refused unread.
MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES = env_int("MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES", 2 * MAX_IMPORT_ZIP_BYTES)
# An import of one file, or of at most this many files and MAX_UPLOAD_BYTES in all, runs in the
# request (a few seconds at worst); anything larger runs on the training cluster, its progress on
# the dataset page.
IMPORT_IN_REQUEST_MAX_FILES = env_int("IMPORT_IN_REQUEST_MAX_FILES", 20)
# Django refuses forms with more fields than this; the admin's bulk actions post one per row.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 10_000)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 1_000)

# Where Keras finds ImageNet weights (models/<file>.h5). Empty: Keras' default, ~/.keras.
KERAS_HOME = os.environ.get("KERAS_HOME", "")

REDIS_URL = os.environ.get("REDIS_URL", "")

Q_CLUSTER = {
    "name": "coffeeclassifier",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 600),
    "retry": env_int("Q_RETRY", 660),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3),
    # The job rows are the record of truth; django-q2's own store of successes only costs a
    # select-and-delete per task (see DESIGN.md §6). Failures are still stored.
    "save_limit": -1,
    "poll": 0.01,
    # Bound each worker process: a fresh one after this many jobs, or above this RSS (KB).
    "recycle": env_int("Q_RECYCLE", 5000),
    "max_rss": env_int("Q_MAX_RSS_KB", 400_000),
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = {"connection_pool": fail_fast_pool(REDIS_URL)}
else:
    Q_CLUSTER["orm"] = "default"

# Production hardening; every item can still be tuned from the environment.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Scripts, styles, fonts and requests from this site only; images also from data: (the page's empty
# icon, the admin's) and blob: (the page previews the chosen photo). No plugins, no framing.
CONTENT_SECURITY_POLICY = os.environ.get(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
)
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# LOG_FORMAT=json writes one JSON object per line (for a log shipper); every line carries the
# request id of the upload it serves, in the web and in the worker that answers it.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = logging_config(
    log_format=LOG_FORMAT,
    level=os.environ.get("LOG_LEVEL", "INFO"),
    django_level=os.environ.get("DJANGO_LOG_LEVEL", "WARNING"),
)

# Prometheus metrics (prometheus_client's multiprocess mode): every process of this machine (web,
# workers, trainer) writes its samples under this folder and /metrics adds them up. The folder
# must be emptied when the processes start (`make run` does; a systemd RuntimeDirectory does).
# prometheus_client reads the variable when it is first imported, so it is set here.
PROMETHEUS_MULTIPROC_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
# How often a worker process writes its row of the admin's Workers page (at most).
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5)

# Real labelled photos for the demo dataset; `make run` imports them when the folder exists.
DEMO_DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR", BASE_DIR.parent / "shared" / "data" / "coffee-or-not"))
DEMO_DATASET_SLUG = "coffee"

# Which machine this process runs on, as recorded with each answer (several may share a queue).
NODE_NAME = (os.environ.get("NODE_NAME") or socket.gethostname())[:80]  # with ":pid", fits the job's field

# Derived data that is safe to delete: cached embeddings per photo and backbone, TFLite templates.
ML_CACHE_DIR = Path(os.environ.get("ML_CACHE_DIR", VAR_DIR / "cache"))
# Trainings run on their own queue cluster, so a long training never delays predictions.
TRAINING_CLUSTER = "training"
TRAINING_TIMEOUT = env_int("TRAINING_TIMEOUT", 3600)
# The admin suggests a retrain once this many photos came from feedback or review since the
# active version was trained; a dataset's opt-in daily retrain waits for as many.
RETRAIN_SUGGESTED_AFTER = env_int("RETRAIN_SUGGESTED_AFTER", 50)
Q_CLUSTER["ALT_CLUSTERS"] = {
    TRAINING_CLUSTER: {
        "workers": 1,
        "timeout": TRAINING_TIMEOUT,
        "retry": TRAINING_TIMEOUT + 60,
        "max_attempts": 1,
        # A fresh process per training returns TensorFlow's memory to the system.
        "recycle": 1,
    }
}

# LiteRT threads scoring a field set: the training cluster runs one task at a time, so it may use both cores.
FIELD_SET_THREADS = env_int("FIELD_SET_THREADS", 2)
# Predictions: LiteRT threads per worker process (workers × threads ≈ cores); how long a job may
# wait queued or running before `requeue_stale` queues it again, and how often it may be tried.
PREDICTOR_THREADS = env_int("PREDICTOR_THREADS", 1)
PREDICTION_STALE_SECONDS = env_int("PREDICTION_STALE_SECONDS", 60)
PREDICTION_MAX_ATTEMPTS = env_int("PREDICTION_MAX_ATTEMPTS", 3)
# Photos that wait this long while nothing is answered mean the prediction cluster is stalled:
# its watchdog restarts it, and /healthz says so.
PREDICTION_STALL_SECONDS = env_int("PREDICTION_STALL_SECONDS", 20)
# How long `qcluster` waits for its processes to finish their task on SIGTERM or Ctrl-C before killing them.
Q_STOP_GRACE_SECONDS = env_int("Q_STOP_GRACE_SECONDS", 8)
PREDICTION_LONG_POLL_MAX_SECONDS = env_int("PREDICTION_LONG_POLL_MAX_SECONDS", 30)
# Waiting requests (`?wait=`) one web process holds at once, from one client address and in all
# (0: no cap). Each holds a thread: keep the second below the server's threads per process.
PREDICTION_WAITS_PER_CLIENT = env_int("PREDICTION_WAITS_PER_CLIENT", 4)
PREDICTION_WAITS_PER_PROCESS = env_int("PREDICTION_WAITS_PER_PROCESS", 6)
DEFAULT_DATASET_SLUG = os.environ.get("DEFAULT_DATASET_SLUG", DEMO_DATASET_SLUG)
# Uploads per client address and window (0: no limit); answered 429 with Retry-After beyond.
PREDICTION_RATE_LIMIT = env_int("PREDICTION_RATE_LIMIT", 60)
PREDICTION_RATE_WINDOW_SECONDS = env_int("PREDICTION_RATE_WINDOW_SECONDS", 60)
# Optional keys for the JSON API (comma-separated): when set, clients send one in X-API-Key; the
# upload page's own requests (its session, with the CSRF token) need none.
API_KEYS = [key.strip() for key in os.environ.get("API_KEYS", "").split(",") if key.strip()]
# Behind a reverse proxy that sets X-Forwarded-For, its last entry is the client's address.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)
