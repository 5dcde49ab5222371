"""The live statistics of one session, as one JSON-ready dict.

Both the ``stats`` action (one snapshot per request) and the Server-Sent Events stream
(``streams.py``: one snapshot per interval) send this shape, so it is built in one place.
Secrets in the endpoints' URLs (``?api_key=``) and in event messages are masked here, for
everyone: the monitor publishes one snapshot per tick that every viewer's stream shares.
It reads the database only (the monitor copies Redis there about once a second), so it is
synchronous: async callers run it in ``sync_to_async``.
"""

from apps.sessions.access.masking import mask_text
from apps.sessions.api.serializers.results import (
    EndpointStatsSerializer,
    FlowStatsSerializer,
    SessionEventSerializer,
)
from apps.sessions.choices import EVENT_MILESTONES
from apps.sessions.models import LoadTestSession
from apps.sessions.results.figures import scope_figures, sum_counts
from apps.workers.secrets import plan_secrets

RECENT_EVENTS = 20


def stats_snapshot(session: LoadTestSession) -> dict:
    """Totals, per-endpoint and per-flow figures, as of the monitor's last pass (about 1 s ago).

    ``updated_at`` stays a datetime: the caller's JSON encoder formats it.
    """
    endpoints = list(session.endpoint_stats.all())
    secrets = plan_secrets(session.read_plan())
    endpoint_rows = EndpointStatsSerializer(endpoints, many=True).data
    for row in endpoint_rows:
        row["url"] = mask_text(row["url"], secrets)
    events = SessionEventSerializer(recent_events(session), many=True).data
    for event in events:
        event["message"] = mask_text(event["message"], secrets)
    return {
        "session": session.pk,
        "status": session.status,
        "total_requests": session.total_requests,
        "total_failures": session.total_failures,
        # The whole run's figures, as every other surface shows them (``results.figures``).
        "run": scope_figures(endpoints, session.duration_s()).as_dict(),
        "duration_s": round(session.duration_s(), 3),
        "updated_at": session.stats_updated_at,
        "not_sent": sum_counts(row.not_sent for row in endpoints),
        "endpoints": endpoint_rows,
        # Multi-step flows (empty for a session without): their steps are endpoint rows.
        "flows": FlowStatsSerializer(session.flow_stats.all(), many=True).data,
        # Each threshold's latest verdict (the monitor's, as of its last pass).
        "threshold_results": session.threshold_results or [],
        "recent_events": events,
    }


def recent_events(session: LoadTestSession) -> list:
    """The newest RECENT_EVENTS events and, whatever came after them, the session's
    milestones (created, started, load began, stop asked, ended), newest first: a breaker
    flapping fills the newest twenty, never hides how the run began and ended."""
    events = session.events.order_by("-at", "-pk")
    newest = list(events[:RECENT_EVENTS])
    shown = {event.pk for event in newest}
    older = [e for e in events.filter(kind__in=EVENT_MILESTONES) if e.pk not in shown]
    return newest + older  # the milestones older than the newest, still newest first
