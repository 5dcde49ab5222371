"""JSON shapes of a run's results: statistics rows, time-series points, events, errors, requests."""

from rest_framework import serializers

from apps.sessions.models import (
    EndpointStats,
    ErrorSample,
    FlowStats,
    RequestLogEntry,
    SessionEvent,
    TimeSeriesPoint,
)
from apps.sessions.models.results import DURATION_FIELDS

# The duration summary an endpoint's and a flow's figures share (``DurationFigures``).


class EndpointStatsSerializer(serializers.ModelSerializer):
    class Meta:
        model = EndpointStats
        fields = [
            "name",
            "method",
            "url",
            "requests",
            "failures",
            "failures_by_class",
            "cut_by_stop",
            "unreached",
            "not_sent",
            "check_failures",
            *DURATION_FIELDS,
        ]


class FlowStatsSerializer(serializers.ModelSerializer):
    """One multi-step flow's figures: iterations ended, those that failed (a step failed and
    the later ones were not sent) and iteration durations in ms, first send to last answer,
    think times between steps included."""

    failure_rate = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="failed_iterations / iterations (null before the first iteration ended).",
    )

    class Meta:
        model = FlowStats
        fields = [
            "name",
            "flow_id",
            "iterations",
            "failed_iterations",
            "failure_rate",
            *DURATION_FIELDS,
        ]


class SessionEventSerializer(serializers.ModelSerializer):
    """One event: what (``kind``, and ``label`` in words), who (``actor``: a user's name, or
    the service's own: "system", "the duration", "the error ceiling") and through which
    surface (``via``: page, api, admin, cli, schedule, system)."""

    label = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = SessionEvent
        fields = ["at", "kind", "label", "message", "actor", "via", "hostname", "shard"]


class TimeSeriesPointSerializer(serializers.ModelSerializer):
    """A point covers ``resolution_s`` seconds from ``timestamp`` (1, or 60 and 3600 once
    downsampled): its counts are totals over that period, ``requests_per_s`` their rate."""

    mean_ms = serializers.FloatField(read_only=True)
    requests_per_s = serializers.FloatField(read_only=True)

    class Meta:
        model = TimeSeriesPoint
        fields = [
            "timestamp",
            "resolution_s",
            "requests",
            "requests_per_s",
            "failures",
            "unavailable",
            "suppressed",
            "mean_ms",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "users",
            "failures_by_class",
        ]


class ErrorSampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ErrorSample
        fields = ["at", "endpoint", "failure_class", "status", "message", "hostname", "trace_id"]


class RequestLogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = RequestLogEntry
        fields = ["at", "endpoint", "method", "path", "status", "failure_class", "latency_ms",
                  "hostname", "trace_id"]  # fmt: skip
