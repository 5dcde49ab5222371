"""Why a lifecycle action was refused, as exceptions every surface maps the same way."""

from __future__ import annotations


class SessionStateError(Exception):
    """The action conflicts with the session's current status (the API answers 409)."""


class EngineUnavailable(Exception):
    """Redis or the broker could not be reached, so load cannot start (the API answers 503)."""
