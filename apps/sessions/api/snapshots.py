"""The live statistics of one session, as one JSON-ready dict.

Both the ``stats`` action (one snapshot per request) and the Server-Sent Events stream
(``streams.py``: one snapshot per interval) send this shape, so it is built in one place.
It reads the database only (the monitor copies Redis there about once a second), so it is
synchronous: async callers run it in ``sync_to_async``.
"""

from apps.sessions.api.serializers.results import (
    EndpointStatsSerializer,
    FlowStatsSerializer,
    SessionEventSerializer,
)
from apps.sessions.models import LoadTestSession
from apps.sessions.results.figures import scope_figures, sum_counts

RECENT_EVENTS = 20


def stats_snapshot(session: LoadTestSession) -> dict:
    """Totals, per-endpoint and per-flow figures, as of the monitor's last pass (about 1 s ago).

    ``updated_at`` stays a datetime: the caller's JSON encoder formats it.
    """
    endpoints = list(session.endpoint_stats.all())
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
        "endpoints": EndpointStatsSerializer(endpoints, many=True).data,
        # Multi-step flows (empty for a session without): their steps are endpoint rows.
        "flows": FlowStatsSerializer(session.flow_stats.all(), many=True).data,
        # Each threshold's latest verdict (the monitor's, as of its last pass).
        "threshold_results": session.threshold_results or [],
        "recent_events": SessionEventSerializer(
            session.events.order_by("-at", "-pk")[:RECENT_EVENTS], many=True
        ).data,
    }
