"""App configuration for the operations app."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Commands an operator runs (``prepare``, ``role``, ``runstack``). It has no models.

    Neither domain nor engine: it sits on top of both, so that ``apps/sessions`` stays the
    domain and control plane and ``apps/workers`` the engine.
    """

    name = "apps.ops"
    verbose_name = "Operations"
