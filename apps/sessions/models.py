"""The domain's tables: what to load (targets, endpoints), runs of load (sessions), and results.

A session's row is the truth about its lifecycle. Results are bounded: one statistics row per
endpoint (counters and a fixed-size latency histogram) and one time-series point per second,
however many requests are sent.
"""

import contextlib
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.workers.checks import DEFAULT_EXPECTED_STATUSES, STATUSES_CHARS_MAX, normalise_statuses
from apps.workers.plan import Plan

from . import validation
from .choices import (
    ACTIVE_STATUSES,
    FAILURE_CLASS_CHOICES,
    EndReason,
    EventKind,
    FeedMode,
    HttpMethod,
    SessionStatus,
    WebhookFormat,
)
from .windows import Window


class Target(models.Model):
    """A web application under test, identified by its base URL (its host must be allowed)."""

    name = models.CharField(max_length=100, unique=True, validators=[validation.check_single_line])
    base_url = models.CharField(
        max_length=500,
        validators=[validation.check_target_url],
        help_text="For example http://localhost:5001; the host and port must be on "
        "ALLOWED_TARGET_HOSTS.",
    )
    description = models.TextField(
        blank=True, max_length=validation.DESCRIPTION_CHARS_MAX, validators=[validation.check_text]
    )
    # The finished run later runs on this target are compared with (apps/sessions/
    # comparison.py); set and cleared only through services.set_baseline / clear_baseline.
    baseline_session = models.ForeignKey(
        "LoadTestSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    regression_margin_pct = models.FloatField(
        "regression margin (%)",
        null=True,
        blank=True,
        validators=[
            validation.check_finite,
            MinValueValidator(0.0),
            MaxValueValidator(validation.REGRESSION_MARGIN_PCT_MAX),
        ],
        help_text="A figure worse than the baseline's by more than this is a regression; "
        "empty: REGRESSION_MARGIN_PCT.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url})"

    def margin_pct(self) -> float:
        """The regression margin of this target: its own, or the setting's."""
        if self.regression_margin_pct is not None:
            return self.regression_margin_pct
        return float(settings.REGRESSION_MARGIN_PCT)


class Endpoint(models.Model):
    """One request the virtual users may send (the seed's EndpointConfig)."""

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="endpoints")
    name = models.CharField(max_length=100, validators=[validation.check_single_line])
    url = models.CharField(
        max_length=500,
        validators=[validation.check_endpoint_url],
        help_text="A path on the target (/performance/slow) or an absolute allowed URL.",
    )
    method = models.CharField(max_length=7, choices=HttpMethod.choices, default=HttpMethod.GET)
    weight = models.FloatField(
        default=1.0,
        validators=[
            validation.check_finite,
            MinValueValidator(0.0),
            MaxValueValidator(validation.WEIGHT_MAX),
        ],
        help_text="Relative share of requests; 0 leaves the endpoint out.",
    )
    timeout_s = models.FloatField(
        "timeout (seconds)",
        default=30.0,
        validators=[
            validation.check_finite,
            MinValueValidator(validation.TIMEOUT_S_MIN),
            MaxValueValidator(validation.TIMEOUT_S_MAX),
        ],
    )
    description = models.TextField(
        blank=True, max_length=validation.DESCRIPTION_CHARS_MAX, validators=[validation.check_text]
    )
    headers = models.JSONField(default=dict, blank=True, decoder=validation.BoundedJSONDecoder)
    body = models.TextField(blank=True, validators=[validation.check_body])
    expected_statuses = models.CharField(
        max_length=STATUSES_CHARS_MAX,
        default=DEFAULT_EXPECTED_STATUSES,
        validators=[validation.check_expected_statuses],
        help_text="Statuses that count as successes, like 200-399 or 200-299,404 or 500,503.",
    )
    checks = models.JSONField(
        default=list,
        blank=True,
        decoder=validation.BoundedJSONDecoder,
        validators=[validation.check_response_checks],
        help_text='Response checks, a JSON list, e.g. [{"type": "body_contains", "value": '
        '"ok"}, {"type": "json_path_equals", "path": "$.status", "value": "ok"}]. See the '
        'README, "Checks and expected statuses".',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["target", "name"]
        constraints = [
            models.UniqueConstraint(fields=["target", "name"], name="unique_endpoint_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.method} {self.url}"

    def absolute_url(self) -> str:
        if self.url.startswith("/"):
            return self.target.base_url.rstrip("/") + self.url
        return self.url

    def clean(self) -> None:
        with contextlib.suppress(ValueError):  # the field's validator has said why
            self.expected_statuses = normalise_statuses(self.expected_statuses)
        try:
            validation.check_headers(self.headers)
            if self.target_id is not None:
                validation.check_host_header(self.absolute_url(), self.headers)
        except ValidationError as exc:
            raise ValidationError({"headers": exc.messages}) from exc
        validation.check_endpoint_templates(self.url, self.headers, self.body)
        self.check_name_free_of_flows()

    def check_name_free_of_flows(self) -> None:
        """An endpoint's name is not a flow's of the same target (``Flow``)."""
        if (
            self.target_id
            and self.name
            and Flow.objects.filter(target_id=self.target_id, name=self.name).exists()
        ):
            raise ValidationError(
                {
                    "name": [
                        f"The target has a flow named '{self.name}'; an endpoint and a flow of "
                        "one target need different names."
                    ]
                }
            )


class Flow(models.Model):
    """An ordered list of steps (endpoint calls of one target) that a virtual user runs as one
    iteration, picked by weight beside the single endpoints: a login, then what a logged-in
    user does. Values extracted from a step's answer become variables of the later steps.

    Its name shares the namespace of the target's endpoints (a session's ``endpoint_weights``
    names either), so it is unique among both. Steps are written whole, through
    ``services.save_flow``, which checks the flow and its steps together (``flows``).
    """

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=100, validators=[validation.check_single_line])
    weight = models.FloatField(
        default=1.0,
        validators=[
            validation.check_finite,
            MinValueValidator(0.0),
            MaxValueValidator(validation.WEIGHT_MAX),
        ],
        help_text="Relative share of iterations, beside the endpoints' weights; 0 leaves the "
        "flow out.",
    )
    description = models.TextField(
        blank=True, max_length=validation.DESCRIPTION_CHARS_MAX, validators=[validation.check_text]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["target", "name"]
        constraints = [
            models.UniqueConstraint(fields=["target", "name"], name="unique_flow_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (flow)"

    def clean(self) -> None:
        if self.target_id and self.name and self.target.endpoints.filter(name=self.name).exists():
            raise ValidationError(
                {
                    "name": [
                        f"The target has an endpoint named '{self.name}'; a flow and an endpoint "
                        "of one target need different names (a session's endpoint_weights "
                        "names either)."
                    ]
                }
            )


class FlowStep(models.Model):
    """One step of a flow: a call of one of the target's endpoints (its templates, checks and
    expected statuses), the values to extract from its answer, and the think time after it."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(help_text="1 for the first step.")
    # RESTRICT: an endpoint a flow calls cannot be deleted on its own (the flow would change
    # behind its owner's back), but goes with its target, flows and all.
    endpoint = models.ForeignKey(Endpoint, on_delete=models.RESTRICT, related_name="flow_steps")
    think_time_s = models.FloatField(
        "think time (seconds)",
        default=0.0,
        validators=[
            validation.check_finite,
            MinValueValidator(0.0),
            MaxValueValidator(validation.THINK_TIME_S_MAX),
        ],
        help_text="Pause after this step, before the next.",
    )
    extract = models.JSONField(
        default=list,
        blank=True,
        decoder=validation.BoundedJSONDecoder,
        validators=[validation.check_extractions],
        help_text='Values for the later steps, a JSON list, e.g. [{"name": "csrf_token", '
        '"json_path": "$.csrf_token"}] (or "regex" or "header" instead of "json_path").',
    )

    class Meta:
        ordering = ["flow", "position"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "position"], name="unique_flow_step"),
        ]

    def __str__(self) -> str:
        return f"{self.flow.name}, step {self.position}: {self.endpoint.name}"


class LoadTestSession(models.Model):
    """A run of load against one target: the seed's LoadTestConfig plus its lifecycle.

    ``plan`` is the resolved configuration the shards executed (absolute URLs, effective
    weights), frozen at start so results stay readable if the catalog changes later.
    """

    # The LoadTestConfig: what a user sets, what the history tracks, what a clone copies.
    CONFIG_FIELDS = (
        "session_name",
        "target",
        "concurrent_users",
        "duration_minutes",
        "request_interval_min",
        "request_interval_max",
        "endpoint_weights",
        "max_errors_per_minute",
        "enable_logging",
        "target_rps",
        "ramp_up_seconds",
        "thresholds",
        "tags",
        "send_session_header",
        "send_traceparent",
    )

    session_name = models.CharField(max_length=200, validators=[validation.check_single_line])
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="sessions")
    concurrent_users = models.PositiveIntegerField(default=10)
    duration_minutes = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal(30),
        help_text="Decimals allowed (0.25 = 15 s); 0 runs until stopped.",
    )
    request_interval_min = models.FloatField(default=1.0, help_text="Think time, seconds.")
    request_interval_max = models.FloatField(default=5.0, help_text="Think time, seconds.")
    endpoint_weights = models.JSONField(
        default=dict,
        blank=True,
        decoder=validation.BoundedJSONDecoder,
        help_text="Endpoint name -> weight, overriding its own.",
    )
    max_errors_per_minute = models.PositiveIntegerField(
        default=100, help_text="The session stops itself above this; 0 = no limit."
    )
    enable_logging = models.BooleanField(default=True)
    target_rps = models.FloatField(
        "target rate (requests/s)",
        null=True,
        blank=True,
        help_text="Open model: hold this request rate whatever the target's latency, with "
        "concurrent_users as the most requests in flight. Empty: the closed model (think time).",
    )
    ramp_up_seconds = models.FloatField(
        default=0.0, help_text="Users (or the rate) grow linearly to the target over this time."
    )
    thresholds = models.JSONField(
        default=list,
        blank=True,
        decoder=validation.BoundedJSONDecoder,
        help_text='Pass/fail thresholds, e.g. ["p95_ms < 500", "checkout: error_rate < 0.01 '
        'abort"] (see the README).',
    )

    # Labels to find runs by ("nightly", "release-2.4"), not configuration of the load: they
    # may change at any status (``services.update_session``).
    tags = models.JSONField(
        default=list,
        blank=True,
        decoder=validation.BoundedJSONDecoder,
        validators=[validation.check_tags],
        help_text=f"Up to {validation.TAGS_MAX} labels of letters, digits and - _ . : "
        f"(at most {validation.TAG_CHARS_MAX} characters each), e.g. nightly, checkout.",
    )
    # What the target's APM sees (see README, "The APM beside the load").
    send_session_header = models.BooleanField(
        default=True,
        help_text="Every request names the session in a header (SESSION_HEADER_NAME: its id), "
        "so the target's traces and logs can be filtered by session.",
    )
    send_traceparent = models.BooleanField(
        default=False,
        help_text="Every request carries a fresh W3C traceparent; sampled errors and the "
        "request log keep its trace id.",
    )

    status = models.CharField(
        max_length=10, choices=SessionStatus.choices, default=SessionStatus.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    start_time = models.DateTimeField(null=True, blank=True)
    # When the first shard began sending: the duration counts from here, not from the start
    # call, since shards may wait in the queue for a free worker process.
    load_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    end_time = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    end_detail = models.TextField(blank=True)
    # What an active session is waiting for, in words (shards queued for want of a free
    # load worker process); empty when nothing holds it up.
    status_detail = models.TextField(blank=True, editable=False)
    plan = models.JSONField(null=True, blank=True, editable=False)

    total_requests = models.BigIntegerField(default=0)
    total_failures = models.BigIntegerField(default=0)
    stats_updated_at = models.DateTimeField(null=True, blank=True)
    # Each threshold's latest judgement (expression, scope, metric, observed, passed, note,
    # evaluated_at, aborted, final), written by the monitor on every tick and once more at
    # the end; ``results_final_at`` says when that last write (after the last statistics)
    # happened, so a reader such as the CLI knows the figures are complete.
    threshold_results = models.JSONField(default=list, blank=True, editable=False)
    results_final_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The schedule that started this run, if any (apps/sessions/services.py run_schedule).
    schedule = models.ForeignKey(
        "Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "load-test session"
        permissions = [
            ("operate_loadtestsession", "Can start, stop and change the load of sessions"),
            ("emergency_stop", "Can stop every running session at once"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.session_name} [{self.status}]"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def runs_until_stopped(self) -> bool:
        return not self.duration_minutes

    @property
    def deadline(self):
        """When the duration ends, counted from the load's start; None until the load has
        started, and for a session that runs until stopped."""
        if self.load_started_at is None or self.runs_until_stopped:
            return None
        return self.load_started_at + timedelta(minutes=float(self.duration_minutes))

    def elapsed_seconds(self) -> float:
        """Seconds of load so far (or in all, once ended); 0 while no shard has started."""
        if self.load_started_at is None:
            return 0.0
        end = self.end_time or timezone.now()
        return max((end - self.load_started_at).total_seconds(), 0.0)

    def requests_per_second(self) -> float:
        elapsed = self.elapsed_seconds()
        return self.total_requests / elapsed if elapsed > 0 else 0.0

    def config(self) -> dict[str, object]:
        """The session's LoadTestConfig, by field name."""
        return {name: getattr(self, name) for name in self.CONFIG_FIELDS}

    def read_plan(self) -> Plan | None:
        """The plan the session's shards execute, frozen at start; None before."""
        return Plan.from_json(self.plan) if self.plan else None

    @property
    def pacing(self) -> str:
        return "open" if self.target_rps else "closed"

    def clean(self) -> None:
        if self.target_id is None:
            return
        validation.check_session_config(
            self.config(),
            dict(self.target.endpoints.values_list("name", "weight")),
            dict(self.target.flows.values_list("name", "weight")),
        )


# A name in the results: an endpoint's (at most 100 characters), or a flow step's, which the
# plan spells "<flow> \u203a <n>. <endpoint>": a flow's name, an endpoint's and a few characters.
STATS_NAME_CHARS_MAX = 250


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
    """Something the engine did or saw during a session (breaker, load reduction, shed users,
    re-dispatch), so that an operator can tell why the load changed. Rare by nature; the
    monitor keeps the newest ``SESSION_EVENTS_KEPT`` per session."""

    session = models.ForeignKey(LoadTestSession, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    message = models.TextField()
    hostname = models.CharField(max_length=200, blank=True)
    shard = models.IntegerField(null=True, blank=True)

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


class Webhook(models.Model):
    """Where to tell whom about a session's events: for one session, or (``session`` empty)
    for every session.

    ``secret`` signs each body (HMAC-SHA256); it is write-only in the API, masked in the
    admin and the history, and never logged. The URL may carry a credential of its own (a
    Slack incoming-webhook URL does), so events and logs name only its host.
    """

    name = models.CharField(max_length=100, validators=[validation.check_single_line])
    url = models.CharField(
        "URL",
        max_length=validation.WEBHOOK_URL_CHARS_MAX,
        help_text="http(s); on a host load may be sent to, its port must be on "
        "ALLOWED_TARGET_HOSTS too.",
    )
    secret = models.CharField(
        max_length=validation.WEBHOOK_SECRET_CHARS_MAX,
        blank=True,
        validators=[validation.check_webhook_secret],
        help_text="Signs each body (X-Loadtest-Signature); empty: unsigned.",
    )
    events = models.JSONField(
        default=list,
        validators=[validation.check_webhook_events],
        help_text='Which events to send, e.g. ["started", "completed", "failed"].',
    )
    format = models.CharField(
        max_length=10, choices=WebhookFormat.choices, default=WebhookFormat.JSON
    )
    session = models.ForeignKey(
        LoadTestSession,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhooks",
        help_text="Empty: a global webhook, for every session (admin role only).",
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        permissions = [("manage_global_webhooks", "Can manage webhooks for every session")]

    def __str__(self) -> str:
        scope = f"session {self.session_id}" if self.session_id else "global"
        return f"{self.name} ({scope})"

    def clean(self) -> None:
        try:
            validation.check_webhook_url(self.url, target_hosts())
        except ValidationError as exc:
            raise ValidationError({"url": exc.messages}) from exc


def target_hosts() -> list[str]:
    """The hosts of every target: load may be sent there."""
    hosts = []
    for base_url in Target.objects.values_list("base_url", flat=True):
        try:
            hosts.append(urlsplit(base_url).hostname or "")
        except ValueError:  # validated when saved; a row changed behind our back
            continue
    return hosts


class ConfigChange(models.Model):
    """Who changed which field of a session, endpoint or target, when, from what to what
    (the seed's 設定変更の履歴, configuration history)."""

    object_type = models.CharField(max_length=20)  # "session", "endpoint", "target"
    object_id = models.BigIntegerField()
    object_repr = models.CharField(max_length=200)
    field = models.CharField(max_length=100)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    via = models.CharField(max_length=10)  # "api" or "admin"

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["object_type", "object_id", "-changed_at"])]

    def __str__(self) -> str:
        change = f"{self.old_value!r} -> {self.new_value!r}"
        return f"{self.object_type} {self.object_id}.{self.field}: {change}"


class AuditEntry(models.Model):
    """Every state-changing call to the API or the admin: who, when, what, from where.

    Written by ``apps.sessions.audit.AuditMiddleware`` after the response, whatever its
    outcome, so refused attempts are on record too. Request bodies are never stored.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    action = models.CharField(max_length=200, blank=True)
    status_code = models.PositiveSmallIntegerField()
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or 'anonymous'} {self.method} {self.path}"
        )


class Schedule(models.Model):
    """Load run on a timetable: a copy of a template session, started on an interval or a
    crontab, only inside an optional window, never while its previous run is still active.

    Beat fires it through a PeriodicTask of django-celery-beat that the services keep in step
    with this row (``periodic_task``); each firing either starts an ordinary session linked
    here (``runs``) or records why it did not (``last_skipped_at``, ``last_message``).
    """

    name = models.CharField(max_length=200, unique=True, validators=[validation.check_single_line])
    template = models.ForeignKey(
        LoadTestSession,
        on_delete=models.PROTECT,
        related_name="template_of",
        help_text="Each run copies this session's configuration (target, users, pacing, ...).",
    )
    interval_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(validation.SCHEDULE_INTERVAL_S_MAX)],
        help_text="Start a run every this many seconds; or give a crontab instead.",
    )
    crontab = models.CharField(
        max_length=100,
        blank=True,
        validators=[validation.check_crontab],
        help_text='Five fields, minute hour day-of-month month day-of-week ("0 9 * * 1-5"), '
        "in the schedule's time zone.",
    )
    window_days = models.JSONField(
        default=list,
        blank=True,
        validators=[validation.check_weekdays],
        help_text="Days a run may start (0 Monday ... 6 Sunday); empty: every day.",
    )
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(
        null=True, blank=True, help_text="Before the start: the window ends the next day."
    )
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validation.check_time_zone]
    )
    run_duration_minutes = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Each run's duration; empty: the template's. A run never outlasts the window.",
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Runs start with this user's permissions.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        editable=False,
        related_name="+",
    )
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_skipped_at = models.DateTimeField(null=True, blank=True, editable=False)
    skipped_runs = models.PositiveIntegerField(default=0, editable=False)
    last_message = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def window(self) -> Window:
        return Window(self.window_days or (), self.window_start, self.window_end, self.time_zone)

    def clean(self) -> None:
        if bool(self.interval_seconds) == bool(self.crontab):
            raise ValidationError(
                {"interval_seconds": "Give either interval_seconds or crontab (exactly one)."}
            )
        if (self.window_start is None) != (self.window_end is None):
            raise ValidationError(
                {"window_end": "Give both window_start and window_end, or neither."}
            )


class DataFeed(models.Model):
    """A target's data feed: rows of values (a CSV file with a header) that the templates of
    its endpoints read as ``{{ feed.<column> }}``, one row per iteration of a user.

    Stored parsed (``columns``, ``rows``), so that ``services.build_plan`` ships it in the
    plan without parsing again; the file itself is not kept, only its name, size and a hash
    (for the configuration history). Changed only through ``services.save_feed`` and
    ``services.delete_feed``.
    """

    target = models.OneToOneField(Target, on_delete=models.CASCADE, related_name="feed")
    filename = models.CharField(max_length=200, blank=True)
    columns = models.JSONField(default=list)
    rows = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the uploaded file.")
    mode = models.CharField(
        max_length=10,
        choices=FeedMode.choices,
        default=FeedMode.SEQUENTIAL,
        help_text="sequential: rows in order (each shard from its own offset); random: any "
        "row each time; per_user: user k keeps row k (wrapping).",
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["target"]
        verbose_name = "data feed"

    def __str__(self) -> str:
        return f"{self.filename or 'feed'} of {self.target.name} ({self.row_count:,} rows)"

    def preview(self, count: int = 5) -> list[list[str]]:
        """The first ``count`` rows (never the whole file)."""
        return list(self.rows[:count])

    def summary(self) -> dict[str, object]:
        """What the configuration history keeps of a feed: never its values."""
        return {
            "filename": self.filename,
            "columns": list(self.columns),
            "row_count": self.row_count,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256[:12],
            "mode": self.mode,
        }
