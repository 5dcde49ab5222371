"""The domain's tables, one module per concern; every model is imported here, so that Django
finds them all under the app (label ``loadtests``) and ``apps.sessions.models`` names them.

A session's row is the truth about its lifecycle. Results are bounded: one statistics row per
endpoint (counters and a fixed-size latency histogram) and one time-series point per second,
however many requests are sent.
"""

from apps.sessions.models.access import AuditEntry, ConfigChange
from apps.sessions.models.catalog import DataFeed, Endpoint, Flow, FlowStep, Target
from apps.sessions.models.integrations import Webhook, target_hosts
from apps.sessions.models.results import (
    STATS_NAME_CHARS_MAX,
    DurationFigures,
    EndpointStats,
    ErrorSample,
    FlowStats,
    RequestLogEntry,
    SessionEvent,
    TimeSeriesPoint,
)
from apps.sessions.models.sessions import LoadTestSession, Schedule

__all__ = [
    "STATS_NAME_CHARS_MAX",
    "AuditEntry",
    "ConfigChange",
    "DataFeed",
    "DurationFigures",
    "Endpoint",
    "EndpointStats",
    "ErrorSample",
    "Flow",
    "FlowStats",
    "FlowStep",
    "LoadTestSession",
    "RequestLogEntry",
    "Schedule",
    "SessionEvent",
    "Target",
    "TimeSeriesPoint",
    "Webhook",
    "target_hosts",
]
