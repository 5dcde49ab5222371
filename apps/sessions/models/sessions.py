"""Runs of load: sessions (a session's row is the truth about its lifecycle) and schedules."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.sessions import validation
from apps.sessions.choices import ACTIVE_STATUSES, EndReason, SessionStatus
from apps.sessions.models.catalog import Target
from apps.sessions.models.windows import Window
from apps.workers.plan import Plan


class LoadTestSession(models.Model):
    """A run of load against one target: its configuration (``CONFIG_FIELDS``) plus its lifecycle.

    ``plan`` is the resolved configuration the shards executed (absolute URLs, effective
    weights), frozen at start so results stay readable if the catalog changes later.
    """

    # The configuration: what a user sets, what the history tracks, what a clone copies.
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
    # may change at any status (``editing.update_session``).
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
    # The schedule that started this run, if any (``lifecycle/schedules.py``, ``run_schedule``).
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

    def duration_s(self) -> float:
        """Seconds of load so far (or in all, once ended); 0 while no shard has started."""
        if self.load_started_at is None:
            return 0.0
        end = self.end_time or timezone.now()
        return max((end - self.load_started_at).total_seconds(), 0.0)

    def requests_per_second(self) -> float:
        elapsed = self.duration_s()
        return self.total_requests / elapsed if elapsed > 0 else 0.0

    def config(self) -> dict[str, object]:
        """The session's configuration, by field name."""
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
