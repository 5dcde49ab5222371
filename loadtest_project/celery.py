"""The Celery application, configured from Django settings (``CELERY_*``).

Every process of the service (web, load workers, control worker, beat, Flower) imports this
module, so the queues and routes defined in settings are the same everywhere.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest_project.settings")

app = Celery("loadtest_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
