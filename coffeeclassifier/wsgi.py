"""WSGI entry point (gunicorn coffeeclassifier.wsgi)."""
import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeclassifier.settings")

application = get_wsgi_application()
import_module(settings.ROOT_URLCONF)  # the URLconf and the API's modules load now, not at the first request
# A web process keeps Django and every module loaded here for its whole life. Out of the cyclic
# collector's sight, they are not walked by a full collection, which otherwise stalls a request
# for 66–88 ms a few hundred requests into each process's life (measured under gunicorn on this
# project's 2-core bench VM). As the queue workers do (classifier.apps).
gc.freeze()
