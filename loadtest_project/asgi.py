"""ASGI entry point served by uvicorn: live streams (Server-Sent Events) need ASGI."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest_project.settings")
application = get_asgi_application()
