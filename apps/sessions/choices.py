"""Enumerations of the domain: session statuses, why a session ended, what happened.

Words the engine produces (failure classes, its event kinds) are defined by the engine
(``apps/workers/vocabulary.py``); the choices here take their values from it and add the
labels people read.
"""

from django.db import models

from apps.workers.feed_cursor import PER_USER, RANDOM, SEQUENTIAL
from apps.workers.vocabulary import EngineEventKind, FailureClass


class SessionStatus(models.TextChoices):
    """Lifecycle: pending -> starting -> running -> stopping -> completed / stopped / failed."""

    PENDING = "pending", "Pending"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


_ENDED = frozenset({SessionStatus.COMPLETED, SessionStatus.STOPPED, SessionStatus.FAILED})
# Every move of a session's status, and no other: ``services`` makes each one as a conditional
# UPDATE checked against this table (the engine's states have tables of their own, in
# apps.workers.vocabulary).
SESSION_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    # start_session; a pending session that is stopped ends at once.
    SessionStatus.PENDING: frozenset({SessionStatus.STARTING, SessionStatus.STOPPED}),
    # mark_running (its first shard sends); _undo_start (the dispatch failed); a stop; the
    # monitor's finish (no worker took its shards, Redis lost it).
    SessionStatus.STARTING: frozenset(
        {SessionStatus.RUNNING, SessionStatus.PENDING, SessionStatus.STOPPING}
    )
    | _ENDED,
    # A stop (a user, the duration, a limit); the monitor's finish (workers lost, Redis lost).
    SessionStatus.RUNNING: frozenset({SessionStatus.STOPPING}) | _ENDED,
    # The monitor's finish, once every shard has stopped.
    SessionStatus.STOPPING: _ENDED,
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.STOPPED: frozenset(),
    SessionStatus.FAILED: frozenset(),
}

# Statuses in which shards may be sending load and a monitor must be watching.
ACTIVE_STATUSES = (SessionStatus.STARTING, SessionStatus.RUNNING, SessionStatus.STOPPING)
# Statuses a session never leaves.
TERMINAL_STATUSES = tuple(status for status in SessionStatus if not SESSION_TRANSITIONS[status])


class EndReason(models.TextChoices):
    """Why a session ended; each maps to exactly one terminal status (see ``final_status``)."""

    COMPLETED = "completed", "Duration completed"
    STOPPED_BY_USER = "stopped_by_user", "Stopped by user"
    EMERGENCY_STOP = "emergency_stop", "Emergency stop"
    ERROR_THRESHOLD = "error_threshold", "Error threshold exceeded"
    THRESHOLD_FAILED = "threshold_failed", "An abort threshold failed"
    WORKERS_LOST = "workers_lost", "Load workers lost"
    NO_CAPACITY = "no_capacity", "No free load worker"
    # Redis lost the session's state and it could not be rebuilt (see ``recovery``).
    REDIS_LOST = "redis_lost", "Redis lost the session's state"
    FAILURE = "failure", "Failure"

    @property
    def final_status(self) -> "SessionStatus":
        return {
            EndReason.COMPLETED: SessionStatus.COMPLETED,
            EndReason.STOPPED_BY_USER: SessionStatus.STOPPED,
            EndReason.EMERGENCY_STOP: SessionStatus.STOPPED,
            EndReason.ERROR_THRESHOLD: SessionStatus.STOPPED,
            EndReason.THRESHOLD_FAILED: SessionStatus.STOPPED,
        }.get(self, SessionStatus.FAILED)


# Who ends a session when no user does, as its events name it (``actor``); "system" otherwise.
END_REASON_ACTORS = {
    EndReason.COMPLETED: "the duration",
    EndReason.ERROR_THRESHOLD: "the error ceiling",
    EndReason.THRESHOLD_FAILED: "a threshold",
}


FAILURE_CLASS_LABELS = {
    FailureClass.NETWORK: "Network (refused, reset, DNS)",
    FailureClass.TIMEOUT: "Timeout",
    FailureClass.HTTP_4XX: "HTTP 4xx",
    FailureClass.HTTP_5XX: "HTTP 5xx",
    FailureClass.APPLICATION: "Application (our own exception)",
    FailureClass.CANCELLED: "Cancelled at stop",
}
# Plain strings, so that a migration never refers to the engine's enum.
FAILURE_CLASS_CHOICES = [(failure.value, FAILURE_CLASS_LABELS[failure]) for failure in FailureClass]


class Via(models.TextChoices):
    """The surface a change came through, recorded beside who made it (events, history).

    The dashboard's pages call the API from their scripts and say so in a request header
    (``api.surfaces.VIA_HEADER``); its server-rendered forms call the services directly."""

    PAGE = "page", "the dashboard's pages"
    API = "api", "the REST API"
    ADMIN = "admin", "the admin"
    CLI = "cli", "the command line"
    SCHEDULE = "schedule", "a schedule"
    SYSTEM = "system", "the service itself (monitor, engine)"


class EventKind(models.TextChoices):
    """Things a session's operator should hear about: its lifecycle (created, started, load
    began, stop asked, emergency stop, ended), the control plane's own (users or weights
    changed, load reduced or restored, a shard re-dispatched, workers lost, waiting for
    workers, a threshold failed, the session's Redis state rebuilt after Redis lost it) and
    the engine's (values from ``EngineEventKind``)."""

    CREATED = "created", "Session created"
    STARTED = "started", "Start asked (shards queued)"
    LOAD_STARTED = "load_started", "Load began"
    STOP_REQUESTED = "stop_requested", "Stop asked"
    EMERGENCY_STOP = "emergency_stop", "Emergency stop"
    ENDED = "ended", "Session ended"
    WORKERS_LOST = "workers_lost", "Load workers lost"
    USERS_CHANGED = "users_changed", "User count changed"
    WEIGHTS_CHANGED = "weights_changed", "Endpoint weights changed"
    BREAKER_OPENED = EngineEventKind.BREAKER_OPENED.value, "Circuit breaker opened"
    BREAKER_CLOSED = EngineEventKind.BREAKER_CLOSED.value, "Circuit breaker closed"
    LOAD_REDUCED = "load_reduced", "Load reduced (error rate)"
    LOAD_RESTORED = "load_restored", "Load restored"
    USERS_SHED = EngineEventKind.USERS_SHED.value, "Users shed (worker resources)"
    USERS_RESTORED = EngineEventKind.USERS_RESTORED.value, "Shed users restored"
    SHARD_REDISPATCHED = "shard_redispatched", "Shard re-dispatched"
    SHARD_SUPERSEDED = EngineEventKind.SHARD_SUPERSEDED.value, "Superseded shard stopped"
    ENGINE_ERROR = EngineEventKind.ENGINE_ERROR.value, "Error in the load engine"
    WAITING_FOR_WORKERS = "waiting_for_workers", "Waiting for a free load worker"
    WEBHOOK_FAILED = "webhook_failed", "Webhook delivery failed"
    NEWRELIC_FAILED = "newrelic_failed", "New Relic unreachable or refused"
    THRESHOLD_FAILED = "threshold_failed", "A threshold failed"
    REDIS_STATE_REBUILT = "redis_state_rebuilt", "Redis state rebuilt (counts may lack some)"


# A session's milestones: each happens at most once per session (a start that fails to
# dispatch records nothing), so they are never pruned, whatever floods the rest.
EVENT_MILESTONES = frozenset(
    {
        EventKind.CREATED,
        EventKind.STARTED,
        EventKind.LOAD_STARTED,
        EventKind.STOP_REQUESTED,
        EventKind.EMERGENCY_STOP,
        EventKind.ENDED,
    }
)
# What people and the control plane did to a running session: kept apart from the engine's
# and the monitor's notices (a breaker flapping for hours), each group its newest
# SESSION_EVENTS_KEPT (``results.records.prune_events``).
EVENT_CHANGES = frozenset(
    {
        EventKind.USERS_CHANGED,
        EventKind.WEIGHTS_CHANGED,
        EventKind.REDIS_STATE_REBUILT,
        EventKind.SHARD_REDISPATCHED,
        EventKind.WORKERS_LOST,
    }
)


class WebhookEvent(models.TextChoices):
    """What a webhook can be told about a session (the vocabulary a webhook subscribes to).

    ``threshold_failed`` comes from the thresholds' judgement (apps/sessions/verdicts.py): live,
    when an ``abort`` threshold stops the session, and at the end for those that failed then.
    """

    STARTED = "started", "Session started (its load began)"
    COMPLETED = "completed", "Session completed (its duration ran out)"
    STOPPED = "stopped", "Session stopped (a user, the emergency stop, the error ceiling)"
    FAILED = "failed", "Session failed"
    ERROR_CEILING_REACHED = "error_ceiling_reached", "Error ceiling (max_errors_per_minute) reached"
    THRESHOLD_FAILED = "threshold_failed", "A pass/fail threshold failed"
    LOAD_REDUCED = "load_reduced", "Load reduced (the target was unavailable)"
    WORKERS_LOST = "workers_lost", "Load workers lost"


class WebhookFormat(models.TextChoices):
    JSON = "json", "JSON (the session's summary)"
    SLACK = "slack", 'Slack-compatible ({"text": ...})'


class HttpMethod(models.TextChoices):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class FeedMode(models.TextChoices):
    """How a data feed's rows are handed to users (the engine's words: ``workers.feed_cursor``)."""

    SEQUENTIAL = SEQUENTIAL, "Sequential (in order)"
    RANDOM = RANDOM, "Random"
    PER_USER = PER_USER, "One row per user"
