"""A run's stored results, bounded however many requests are sent: one statistics row per
endpoint and flow (counters and a fixed-size latency histogram), one time-series point per
second, and capped logs of events, error samples and requests."""

from django.db import models

from apps.sessions.choices import FAILURE_CLASS_CHOICES, EventKind, Via
from apps.sessions.models.catalog import Endpoint
from apps.sessions.models.sessions import LoadTestSession

# A name in the results: an endpoint's (at most 100 characters), or a flow step's, which the
# plan spells "<flow> \u203a <n>. <endpoint>": a flow's name, an endpoint's and a few characters.
STATS_NAME_CHARS_MAX = 250


# The fields of ``DurationFigures``, in the order tables show them.
DURATION_FIELDS = ["min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"]


class DurationFigures(models.Model):
    """What the statistics rows of endpoints and flows share: a distribution of durations
    (a request's latency, a flow iteration's length) as its summary and its histogram's
    non-empty buckets (index -> count), from which the percentiles are derived and stored for
    cheap reads."""

    min_ms = models.FloatField(null=True)
    max_ms = models.FloatField(null=True)
    mean_ms = models.FloatField(null=True)
    p50_ms = models.FloatField(null=True)
    p90_ms = models.FloatField(null=True)
    p95_ms = models.FloatField(null=True)
    p99_ms = models.FloatField(null=True)
    p999_ms = models.FloatField(null=True)
    histogram = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class EndpointStats(DurationFigures):
    """Cumulative figures of one endpoint within one session, copied from Redis by the monitor.

    ``histogram`` holds the latency histogram's non-empty buckets (index -> count); the
    percentiles are derived from it and stored for cheap reads.
    """

    session = models.ForeignKey(
        LoadTestSession, on_delete=models.CASCADE, related_name="endpoint_stats"
    )
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=STATS_NAME_CHARS_MAX)
    method = models.CharField(max_length=7)
    url = models.CharField(max_length=1000)  # absolute: the target's base URL + the path
    requests = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    failures_by_class = models.JSONField(default=dict)
    # Requests the session meant to send but did not: "missed" (open model: no free user at
    # the intended time) and "suppressed" (its circuit breaker was open). Never sent, so never
    # part of `requests`.
    not_sent = models.JSONField(default=dict)
    # Answers that failed a response check, by the check's name (each also counts as an
    # ``application`` failure in ``failures_by_class``).
    check_failures = models.JSONField(default=dict, blank=True)
    # Parts of `requests` counted apart. Cut by a stop before their answer: sent, but no
    # failure of the target's (not in `failures`, nor in the error rate). Unreached: attempts
    # whose bytes never reached the target (refused, connect timeout, DNS: also failures; or
    # cut while connecting), so `requests - unreached` is what the target received.
    cut_by_stop = models.BigIntegerField(default=0)
    unreached = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["session", "name"]
        verbose_name_plural = "endpoint stats"
        constraints = [
            models.UniqueConstraint(fields=["session", "name"], name="unique_stats_per_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.requests} requests"


class FlowStats(DurationFigures):
    """Cumulative figures of one multi-step flow within one session, copied from Redis by the
    monitor (``stats.parse_flow_stats``), as ``EndpointStats`` are for endpoints.

    An iteration is one run of the flow's steps by one virtual user; it failed when a step
    failed (the later steps were then not sent). Its duration runs from the first step's send
    to the last answer, think times between steps included; an iteration cut short by a stop
    is not counted. Each step's requests are ordinary ``EndpointStats`` rows.

    ``flow_id`` is the catalog flow the plan names, kept as a plain number: the flow may be
    edited or deleted later, and the results must stay readable.
    """

    session = models.ForeignKey(
        LoadTestSession, on_delete=models.CASCADE, related_name="flow_stats"
    )
    name = models.CharField(max_length=STATS_NAME_CHARS_MAX)
    flow_id = models.IntegerField(null=True, blank=True)
    iterations = models.BigIntegerField(default=0)
    failed_iterations = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["session", "name"]
        verbose_name_plural = "flow stats"
        constraints = [
            models.UniqueConstraint(fields=["session", "name"], name="unique_stats_per_flow"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.iterations} iterations"

    @property
    def failure_rate(self) -> float | None:
        """Failed iterations as a share of all (None before the first one ended)."""
        return self.failed_iterations / self.iterations if self.iterations else None


class TimeSeriesPoint(models.Model):
    """Requests completed in one period of a session, for charts: one row per second while
    fresh, rolled up into one per minute and then per hour as it ages (``downsampling``)."""

    session = models.ForeignKey(
        LoadTestSession, on_delete=models.CASCADE, related_name="timeseries"
    )
    timestamp = models.DateTimeField()  # the period's start
    # The period the point covers: 1 s as the monitor writes it, 60 or 3600 once downsampled.
    # Counts are totals over the period; a rate divides by this.
    resolution_s = models.PositiveIntegerField(default=1)
    requests = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    # Failures that say the target is unavailable (network, timeout, 502/503/504): what the
    # load reduction watches. A deliberately failing endpoint's 500s are not among them.
    unavailable = models.BigIntegerField(default=0)
    # Requests not sent because their endpoint's circuit breaker was open.
    suppressed = models.BigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    # Written by the monitor once per tick, on the second its tick ended in: latency
    # percentiles of the requests completed since the previous tick (from the histograms'
    # growth), the active virtual users in the shards' heartbeats, and failures by class
    # since the previous tick. Null where no tick landed (or nothing completed).
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    users = models.IntegerField(null=True, blank=True)
    failures_by_class = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["session", "timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["session", "timestamp"], name="unique_point"),
        ]
        # The downsampler's question, "which sessions have fine points that are old?",
        # answered from the index alone (the fine old points are few once rolled up).
        indexes = [
            models.Index(fields=["resolution_s", "timestamp", "session"], name="point_age"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%H:%M:%S} {self.requests} req"

    @property
    def mean_ms(self) -> float | None:
        return self.latency_sum_ms / self.requests if self.requests else None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.resolution_s


class SessionEvent(models.Model):
    """Something that happened to a session: a step of its lifecycle (created, started, users
    or weights changed, stop asked, ended), or something the engine or the monitor did or saw
    (breaker, load reduction, shed users, re-dispatch), so that an operator can tell what ran
    and why the load changed, and who asked for it through which surface. Bounded per
    session (``results.records.prune_events``)."""

    session = models.ForeignKey(LoadTestSession, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    message = models.TextField()
    hostname = models.CharField(max_length=200, blank=True)
    shard = models.IntegerField(null=True, blank=True)
    # Text, not a foreign key: who it was stays readable after the user is deleted, and the
    # service's own actors ("system", "the duration", "the error ceiling") are no users.
    actor = models.CharField(max_length=150, default="system")
    via = models.CharField(max_length=10, choices=Via.choices, default=Via.SYSTEM)

    class Meta:
        ordering = ["session", "-at", "-pk"]
        indexes = [models.Index(fields=["session", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind}: {self.message}"


class ErrorSample(models.Model):
    """A sampled failed request: what went wrong, for the session's error log.

    Shards keep at most a few per endpoint and failure class per flush, and the monitor keeps
    the newest ``ERROR_SAMPLES_KEPT`` per session: enough to see what fails and how, bounded
    however many requests fail.
    """

    session = models.ForeignKey(
        LoadTestSession, on_delete=models.CASCADE, related_name="error_samples"
    )
    at = models.DateTimeField()
    endpoint = models.CharField(max_length=STATS_NAME_CHARS_MAX)
    failure_class = models.CharField(max_length=20, choices=FAILURE_CLASS_CHOICES)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField()
    hostname = models.CharField(max_length=200, blank=True)
    trace_id = models.CharField(
        max_length=32, blank=True, help_text="The request's W3C trace id (send_traceparent)."
    )

    class Meta:
        ordering = ["session", "-at", "-pk"]
        indexes = [models.Index(fields=["session", "-at"])]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.failure_class}: {self.message[:60]}"


class RequestLogEntry(models.Model):
    """One sampled request of a session whose ``enable_logging`` is on: its request log.

    Shards log the first few requests per endpoint of every statistics flush, whatever their
    outcome, and the monitor keeps the newest ``REQUEST_LOG_KEPT`` per session: a readable
    trace of what was sent and how it went, bounded however many requests are sent. Only
    what identifies the request is kept, never its headers or body.
    """

    session = models.ForeignKey(
        LoadTestSession, on_delete=models.CASCADE, related_name="request_log"
    )
    at = models.DateTimeField(help_text="When the answer (or the failure) came.")
    endpoint = models.CharField(max_length=STATS_NAME_CHARS_MAX)
    method = models.CharField(max_length=7)
    path = models.CharField(max_length=500, help_text="The URL's path, without query string.")
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    failure_class = models.CharField(max_length=20, choices=FAILURE_CLASS_CHOICES, blank=True)
    latency_ms = models.FloatField()
    hostname = models.CharField(max_length=200, blank=True)
    trace_id = models.CharField(
        max_length=32, blank=True, help_text="The request's W3C trace id (send_traceparent)."
    )

    class Meta:
        ordering = ["session", "-at", "-pk"]
        indexes = [models.Index(fields=["session", "-at"])]
        verbose_name_plural = "request log entries"

    def __str__(self) -> str:
        outcome = self.status if self.status is not None else self.failure_class
        return f"{self.method} {self.path} {outcome} {self.latency_ms:.1f} ms"
