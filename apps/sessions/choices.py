"""Enumerations of the domain: session statuses, why a session ended, failure classes."""

from django.db import models


class SessionStatus(models.TextChoices):
    """Lifecycle: pending -> starting -> running -> stopping -> completed / stopped / failed."""

    PENDING = "pending", "Pending"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


# Statuses in which shards may be sending load and a monitor must be watching.
ACTIVE_STATUSES = (SessionStatus.STARTING, SessionStatus.RUNNING, SessionStatus.STOPPING)
TERMINAL_STATUSES = (SessionStatus.COMPLETED, SessionStatus.STOPPED, SessionStatus.FAILED)


class EndReason(models.TextChoices):
    """Why a session ended; each maps to exactly one terminal status (see ``final_status``)."""

    COMPLETED = "completed", "Duration completed"
    STOPPED_BY_USER = "stopped_by_user", "Stopped by user"
    EMERGENCY_STOP = "emergency_stop", "Emergency stop"
    ERROR_THRESHOLD = "error_threshold", "Error threshold exceeded"
    WORKERS_LOST = "workers_lost", "Load workers lost"
    NO_CAPACITY = "no_capacity", "No free load worker"
    REDIS_LOST = "redis_lost", "Redis lost the session's state"
    FAILURE = "failure", "Failure"

    @property
    def final_status(self) -> "SessionStatus":
        return {
            EndReason.COMPLETED: SessionStatus.COMPLETED,
            EndReason.STOPPED_BY_USER: SessionStatus.STOPPED,
            EndReason.EMERGENCY_STOP: SessionStatus.STOPPED,
            EndReason.ERROR_THRESHOLD: SessionStatus.STOPPED,
        }.get(self, SessionStatus.FAILED)


class FailureClass(models.TextChoices):
    """How a request failed. ``cancelled`` is a request still in flight when its shard stopped."""

    NETWORK = "network", "Network (refused, reset, DNS)"
    TIMEOUT = "timeout", "Timeout"
    HTTP_4XX = "http_4xx", "HTTP 4xx"
    HTTP_5XX = "http_5xx", "HTTP 5xx"
    APPLICATION = "application", "Application (our own exception)"
    CANCELLED = "cancelled", "Cancelled at stop"


class EventKind(models.TextChoices):
    """Things a session's operator should hear about while it runs."""

    USERS_CHANGED = "users_changed", "User count changed"
    BREAKER_OPENED = "breaker_opened", "Circuit breaker opened"
    BREAKER_CLOSED = "breaker_closed", "Circuit breaker closed"
    LOAD_REDUCED = "load_reduced", "Load reduced (error rate)"
    LOAD_RESTORED = "load_restored", "Load restored"
    USERS_SHED = "users_shed", "Users shed (worker resources)"
    USERS_RESTORED = "users_restored", "Shed users restored"
    SHARD_REDISPATCHED = "shard_redispatched", "Shard re-dispatched"
    SHARD_SUPERSEDED = "shard_superseded", "Superseded shard stopped"
    ENGINE_ERROR = "engine_error", "Error in the load engine"
    WAITING_FOR_WORKERS = "waiting_for_workers", "Waiting for a free load worker"


class HttpMethod(models.TextChoices):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"
