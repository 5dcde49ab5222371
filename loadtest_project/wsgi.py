"""WSGI entry point (the service runs under ASGI; this exists for tools that want WSGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest_project.settings")
application = get_wsgi_application()
