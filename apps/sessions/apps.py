"""App configuration for the domain app."""

from django.apps import AppConfig


class LoadSessionsConfig(AppConfig):
    """The domain app. Its label is ``loadtests`` because ``sessions`` is Django's own."""

    name = "apps.sessions"
    label = "loadtests"
    verbose_name = "Load tests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receiver that audits sign-in lockouts.
        pass
