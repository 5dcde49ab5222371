"""The Celery application, configured from Django settings (``CELERY_*``).

Every process of the service (web, load workers, control worker, beat, Flower) imports this
module, so the queues and routes defined in settings are the same everywhere.
"""

import os

from celery import Celery, signals
from django.conf import settings
from django.utils.log import configure_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest_project.settings")

app = Celery("loadtest_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def use_project_logging(**_options) -> None:
    """Log as every other process does: the project's LOGGING (redaction filter, LOG_FILE,
    LOG_LEVEL, the process's name on each line).

    Without a receiver of this signal, Celery's worker and beat replace the root logger's
    handlers with their own (``worker_hijack_root_logger``), which have none of that; with
    one, Celery leaves logging alone, so its ``--loglevel`` and ``--logfile`` options do not
    apply: LOG_LEVEL and LOG_FILE do.
    https://docs.celeryq.dev/en/stable/userguide/signals.html#setup-logging
    """
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
