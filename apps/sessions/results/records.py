"""What a run leaves besides its figures: events, the request log, threshold results, each
kept bounded however long the session runs."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.sessions.choices import EVENT_CHANGES, EVENT_MILESTONES, Via
from apps.sessions.models import LoadTestSession, RequestLogEntry, SessionEvent


def record_threshold_results(session_id: int, results: list[dict], *, final: bool = False) -> None:
    """Store each threshold's latest judgement (``apps.sessions.results.verdicts``); ``final`` marks
    the figures complete (``results_final_at``), even for a session without thresholds."""
    fields: dict[str, object] = {"threshold_results": results}
    if final:
        fields["results_final_at"] = timezone.now()
    LoadTestSession.objects.filter(pk=session_id).update(**fields)


def actor_name(user, default: str = "system") -> str:
    """Who, as an event records it: a signed-in user's name, else ``default`` (the service's
    own actors: "system", "the duration", "the error ceiling")."""
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    return default


def record_event(
    session_id: int,
    kind: str,
    message: str,
    *,
    at=None,
    hostname="",
    shard=None,
    actor: str = "system",
    via: str = Via.SYSTEM,
):
    """Record an event, with who asked (``actor``) and through which surface (``via``); the
    session's events stay bounded whichever path wrote them (``prune_events``)."""
    event = SessionEvent.objects.create(
        session_id=session_id,
        at=at or timezone.now(),
        kind=kind,
        message=message,
        hostname=hostname,
        shard=shard,
        actor=actor[: SessionEvent._meta.get_field("actor").max_length],
        via=via,
    )
    prune_events(session_id)
    return event


def prune_events(session_id: int) -> None:
    """Keep a session's events bounded without losing what ran: the milestones (created,
    started, ended: a few per session) always, the changes of users, weights and shards
    their newest SESSION_EVENTS_KEPT, and the engine's and monitor's notices their own newest
    SESSION_EVENTS_KEPT, so that a breaker flapping for weeks never pushes out who resized or
    stopped the run."""
    events = SessionEvent.objects.filter(session_id=session_id)
    kept = settings.SESSION_EVENTS_KEPT
    keep_newest(events.filter(kind__in=EVENT_CHANGES), kept)
    keep_newest(events.exclude(kind__in=EVENT_MILESTONES | EVENT_CHANGES), kept)


def record_request_log(session_id: int, samples: list[dict]) -> None:
    """Add the shards' sampled requests (oldest first) to the session's request log, keeping
    the newest REQUEST_LOG_KEPT, in one transaction: a reader never sees more. Text is cut to
    its column: paths may be long."""

    def fitted(field: str, value: str) -> str:
        return value[: RequestLogEntry._meta.get_field(field).max_length]

    entries = [
        RequestLogEntry(
            session_id=session_id,
            at=datetime.fromtimestamp(sample["at"], tz=UTC),
            endpoint=fitted("endpoint", sample["endpoint"]),
            method=fitted("method", sample["method"]),
            path=fitted("path", sample["path"]),
            status=sample["status"],
            failure_class=sample["failure_class"],
            latency_ms=sample["latency_ms"],
            hostname=fitted("hostname", sample["hostname"]),
            trace_id=fitted("trace_id", sample.get("trace_id", "")),
        )
        for sample in samples
    ]
    with transaction.atomic():
        RequestLogEntry.objects.bulk_create(entries)
        keep_newest(
            RequestLogEntry.objects.filter(session_id=session_id), settings.REQUEST_LOG_KEPT
        )


def keep_newest(rows: QuerySet, kept: int) -> None:
    """Delete all but the ``kept`` newest of ``rows`` (by ``at``): a session's logs of events,
    errors and requests stay bounded however long it runs."""
    stale_ids = list(rows.order_by("-at", "-pk").values_list("pk", flat=True)[kept:])
    if stale_ids:
        rows.model.objects.filter(pk__in=stale_ids).delete()
