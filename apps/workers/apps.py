"""App configuration for the execution app."""

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """The execution app: Celery tasks and the load engine. It has no models."""

    name = "apps.workers"
    verbose_name = "Load workers"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the worker shutdown handler)
