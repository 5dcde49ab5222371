"""Downloadable results: the whole session as JSON, or one table as CSV."""

import csv
import io
import json
import re

from rest_framework.renderers import BaseRenderer

from apps.sessions.api.serializers.results import (
    ErrorSampleSerializer,
    FlowStatsSerializer,
    RequestLogEntrySerializer,
    SessionEventSerializer,
    TimeSeriesPointSerializer,
)
from apps.sessions.api.serializers.sessions import LoadTestSessionSerializer
from apps.sessions.api.snapshots import stats_snapshot
from apps.sessions.models import LoadTestSession
from apps.workers.secrets import mask_secrets, plan_secrets
from apps.workers.stats import MISSED, SUPPRESSED
from apps.workers.vocabulary import FailureClass

LATENCY_COLUMNS = ["min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms",
                   "max_ms"]  # fmt: skip
# The CSV tables, the first by default.
EXPORT_TABLES = ("endpoints", "timeseries", "requests", "flows")
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\Z")


def neutralised(value: object) -> object:
    """``value`` as a spreadsheet shows it rather than runs it: names, URLs and messages are
    the users' and the targets' (an endpoint called ``=HYPERLINK(...)``), so a text starting
    like a formula gets a single quote before it. A plain number stays as it is."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER.match(value)
    ):
        return "'" + value
    return value


class CSVRenderer(BaseRenderer):
    """Renders a list of flat dicts (the first one's keys are the header) as CSV."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict):  # an error answer: render it as a one-row table
            data = [{key: str(value) for key, value in data.items()}]
        buffer = io.StringIO()
        if data:
            # CRLF as RFC 4180 says; it also makes the writer quote a cell holding a lone "\r".
            writer = csv.DictWriter(buffer, fieldnames=list(data[0]), lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(
                {key: neutralised(value) for key, value in row.items()} for row in data
            )
        return buffer.getvalue().encode(self.charset)


def export_rows(session: LoadTestSession, table: str) -> list[dict]:
    if table == "requests":
        return [
            dict(entry)
            for entry in RequestLogEntrySerializer(
                session.request_log.order_by("at", "pk"), many=True
            ).data
        ]
    if table == "flows":
        return flow_rows(session)
    if table == "timeseries":
        return [
            dict(point)
            for point in TimeSeriesPointSerializer(
                session.timeseries.order_by("timestamp"), many=True
            ).data
        ]
    rows = []
    secrets = plan_secrets(session.read_plan())
    for stats in session.endpoint_stats.order_by("name"):
        row = {
            "endpoint": stats.name,
            "method": stats.method,
            "url": mask_secrets(stats.url, secrets),
            "requests": stats.requests,
            "failures": stats.failures,
            "cut_by_stop": stats.cut_by_stop,
            "unreached": stats.unreached,
        }
        row.update({f"failures_{name}": stats.failures_by_class.get(name, 0)
                    for name in FailureClass})  # fmt: skip
        row.update({name: stats.not_sent.get(name, 0) for name in (MISSED, SUPPRESSED)})
        # Check name -> answers that failed it: names are the user's, so one JSON cell.
        row["check_failures"] = json.dumps(stats.check_failures or {}, ensure_ascii=False)
        row.update({column: getattr(stats, column) for column in LATENCY_COLUMNS})
        rows.append(row)
    return rows


def flow_rows(session: LoadTestSession) -> list[dict]:
    """One row per multi-step flow (none for a session without flows): iterations, failed
    ones, their share and the iteration durations (their steps are rows of ``endpoints``)."""
    flows = FlowStatsSerializer(session.flow_stats.order_by("name"), many=True).data
    return [
        {"flow": flow["name"], **{key: value for key, value in flow.items() if key != "name"}}
        for flow in flows
    ]


def export_document(session: LoadTestSession) -> dict:
    """Everything about the session. Messages quote what targets answered, which may echo a
    request's credentials, and URLs may carry them in their query: the endpoints' secrets are
    masked by value (again: the engine masked samples before storing them, and an export
    must hold for older rows too)."""
    secrets = plan_secrets(session.read_plan())
    stats = stats_snapshot(session)
    for endpoint in stats["endpoints"]:
        endpoint["url"] = mask_secrets(endpoint["url"], secrets)
    for event in stats["recent_events"]:
        event["message"] = mask_secrets(event["message"], secrets, cut_short=True)
    events = SessionEventSerializer(session.events.order_by("at"), many=True).data
    errors = ErrorSampleSerializer(session.error_samples.order_by("at"), many=True).data
    for row in [*events, *errors]:
        row["message"] = mask_secrets(row["message"], secrets, cut_short=True)
    return {
        "session": LoadTestSessionSerializer(session).data,
        "stats": stats,
        "timeseries": TimeSeriesPointSerializer(
            session.timeseries.order_by("timestamp"), many=True
        ).data,
        "events": events,
        "errors": errors,
        "requests": RequestLogEntrySerializer(
            session.request_log.order_by("at", "pk"), many=True
        ).data,
    }
