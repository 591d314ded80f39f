"""The Celery app of the peer, configured from Django's settings (bench.celery_peer.settings).

    celery -A bench.celery_peer.celery_app worker --pool prefork --concurrency 2
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.celery_peer.settings")

app = Celery("celery_peer", include=["bench.celery_peer.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
