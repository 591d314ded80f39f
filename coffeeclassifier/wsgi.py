"""WSGI entry point (gunicorn coffeeclassifier.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeclassifier.settings")

application = get_wsgi_application()
