"""The Django admin: manage the catalog and sessions, start and stop them, read results.

Every change goes through the same functions as from the API (the lifecycle's, the catalog's):
the same checks, the same permissions, the same history. Django's admin autodiscovery imports
this package; each module registers its models, split like ``models/``.
"""

from apps.sessions.admin import access, catalog, integrations, results, sessions

__all__ = ["access", "catalog", "integrations", "results", "sessions"]
