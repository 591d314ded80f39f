"""WSGI entry point (gunicorn coffeeclassifier.wsgi)."""
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from classifier.apps import freeze_what_is_loaded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeclassifier.settings")

application = get_wsgi_application()
import_module(settings.ROOT_URLCONF)  # the URLconf and the API's modules load now, not at the first request
freeze_what_is_loaded()
