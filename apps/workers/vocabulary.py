"""The words the engine reports in: how a request failed, and what happened to the load.

Defined here, on the engine's side, because the engine produces them; the control plane
stores them (its model choices are built from these enums) and adds words of its own.
Values are what Redis and the database hold: never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """How a request failed. ``cancelled`` is a request still in flight when its shard stopped."""

    NETWORK = "network"  # refused, reset, DNS, TLS, an invalid answer
    TIMEOUT = "timeout"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    APPLICATION = "application"  # our own exception
    CANCELLED = "cancelled"


class EngineEventKind(StrEnum):
    """Events a shard records about its own load, for the session's operator."""

    BREAKER_OPENED = "breaker_opened"
    BREAKER_CLOSED = "breaker_closed"
    USERS_SHED = "users_shed"  # the resource guard took users away
    USERS_RESTORED = "users_restored"
    SHARD_SUPERSEDED = "shard_superseded"  # a newer generation runs elsewhere: this one stopped
    ENGINE_ERROR = "engine_error"


# The kind of the records in a session's Redis event list that carry a sampled failed request
# rather than an event: the monitor files them in the error log.
ERROR_SAMPLE = "error_sample"
