"""JSON shapes of sessions (a load test's configuration and status) and schedules."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from apps.sessions.api.surfaces import serializer_via
from apps.sessions.catalog.defaults import (
    default_catalog_weights,
    default_flow_weights,
    find_default_target,
)
from apps.sessions.lifecycle.editing import create_session, update_session
from apps.sessions.lifecycle.schedules import save_schedule
from apps.sessions.models import LoadTestSession, Schedule, Target
from apps.sessions.results.comparison import against_baseline
from apps.sessions.results.figures import run_figures
from apps.sessions.validation import TAGS_MAX, BoundedJSONDecoder, check_session_config, clean_tags


class LoadTestSessionSerializer(serializers.ModelSerializer):
    """A session is created from its configuration (``LoadTestSession.CONFIG_FIELDS``);
    everything else is read-only."""

    target = serializers.PrimaryKeyRelatedField(
        queryset=Target.objects.all(),
        pk_field=serializers.IntegerField(),
        required=False,
        help_text="Target id; omitted, the target at TARGET_APP_URL is used.",
    )
    concurrent_users = serializers.IntegerField(default=10)
    duration_minutes = serializers.DecimalField(max_digits=10, decimal_places=4, default=30)
    request_interval_min = serializers.FloatField(default=1.0)
    request_interval_max = serializers.FloatField(default=5.0)
    endpoint_weights = serializers.JSONField(default=dict, decoder=BoundedJSONDecoder)
    max_errors_per_minute = serializers.IntegerField(default=100)
    target_rps = serializers.FloatField(
        default=None,
        allow_null=True,
        help_text="Open model: requests/s held whatever the target's latency; null: closed model.",
    )
    ramp_up_seconds = serializers.FloatField(default=0.0)
    thresholds = serializers.JSONField(
        default=list,
        decoder=BoundedJSONDecoder,
        help_text="Pass/fail thresholds, one text each: '[ENDPOINT:] METRIC OP NUMBER [abort]', "
        "e.g. 'p95_ms < 500', 'checkout: error_rate < 0.01 abort' (see the README).",
    )
    threshold_results = serializers.JSONField(
        read_only=True,
        help_text="Each threshold's latest judgement: expression, scope, metric, observed, "
        "passed (null: not judged yet), note, evaluated_at, aborted, final.",
    )
    tags = serializers.JSONField(
        default=list,
        decoder=BoundedJSONDecoder,
        help_text=f'Up to {TAGS_MAX} labels (letters, digits, - _ . :), e.g. ["nightly"]; '
        "they can change at any status.",
    )
    # The history list's figures for the whole run: its endpoints' histograms merged.
    duration_s = serializers.SerializerMethodField(help_text="Seconds of load so far.")
    rps = serializers.SerializerMethodField(help_text="Requests/s over the whole run.")
    error_rate = serializers.SerializerMethodField(
        help_text="Failures / requests over the whole run (null before any request)."
    )
    p50_ms = serializers.SerializerMethodField(
        help_text="Median latency of all endpoints' requests together (their histograms merged)."
    )
    p95_ms = serializers.SerializerMethodField(
        help_text="95th percentile latency of all endpoints' requests together."
    )
    p99_ms = serializers.SerializerMethodField(
        help_text="99th percentile latency of all endpoints' requests together."
    )
    created_by = serializers.StringRelatedField()
    started_by = serializers.StringRelatedField()
    stopped_by = serializers.StringRelatedField()

    class Meta:
        model = LoadTestSession
        fields = [
            "id",
            *LoadTestSession.CONFIG_FIELDS,
            "status",
            "created_at",
            "created_by",
            "start_time",
            "load_started_at",
            "end_time",
            "started_by",
            "stopped_by",
            "status_detail",
            "end_reason",
            "end_detail",
            "total_requests",
            "total_failures",
            "duration_s",
            "rps",
            "error_rate",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "threshold_results",
            "results_final_at",
        ]
        read_only_fields = [
            "status",
            "created_at",
            "start_time",
            "load_started_at",
            "end_time",
            "status_detail",
            "end_reason",
            "end_detail",
            "total_requests",
            "total_failures",
            "results_final_at",
        ]

    def to_representation(self, session):
        data = super().to_representation(session)
        # One session's page: its deltas against its target's baseline. Not in lists, where
        # it would read every listed session's results.
        if self.context.get("with_baseline"):
            data["baseline_comparison"] = against_baseline(session)
        return data

    def _whole(self, session: LoadTestSession) -> dict:
        """The run's figures as every surface shows them (``RunFigures.as_dict``), computed
        once per session and response (four fields read them)."""
        cached = getattr(session, "_run_figures", None)
        if cached is None:
            cached = session._run_figures = run_figures(session).as_dict()
        return cached

    def get_duration_s(self, session: LoadTestSession) -> float:
        return self._whole(session)["duration_s"]

    def get_rps(self, session: LoadTestSession) -> float | None:
        return self._whole(session)["rps"]

    def get_error_rate(self, session: LoadTestSession) -> float | None:
        return self._whole(session)["error_rate"]

    def get_p50_ms(self, session: LoadTestSession) -> float | None:
        return self._whole(session)["p50_ms"]

    def get_p95_ms(self, session: LoadTestSession) -> float | None:
        return self._whole(session)["p95_ms"]

    def get_p99_ms(self, session: LoadTestSession) -> float | None:
        return self._whole(session)["p99_ms"]

    def validate_tags(self, tags):
        try:
            return clean_tags(tags)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def validate(self, attrs):
        if self.instance is not None:
            # A partial update is checked as the whole configuration it would produce.
            for name in LoadTestSession.CONFIG_FIELDS:
                attrs.setdefault(name, getattr(self.instance, name))
        target = attrs.get("target")
        if target is not None:
            default_weights = dict(target.endpoints.values_list("name", "weight"))
            flow_weights = dict(target.flows.values_list("name", "weight"))
        else:
            # Validate against the default catalog without creating anything yet.
            existing = find_default_target()
            default_weights = (
                dict(existing.endpoints.values_list("name", "weight"))
                if existing is not None
                else default_catalog_weights()
            )
            flow_weights = (
                dict(existing.flows.values_list("name", "weight"))
                if existing is not None
                else default_flow_weights()
            )
        try:
            check_session_config(attrs, default_weights, flow_weights)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if target is not None:
            try:
                target.full_clean(validate_unique=False)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(
                    {"target": [f"{m}" for m in exc.messages]}
                ) from exc
        return attrs

    # Saving goes through the services, as in the admin: the same checks, history and author.
    def create(self, validated_data):
        user = self.context["request"].user
        via = serializer_via(self.context)
        return create_session(LoadTestSession(**validated_data), user=user, via=via)

    def update(self, session, validated_data):
        user = self.context["request"].user
        return update_session(session, validated_data, user=user, via=serializer_via(self.context))


class StartedSessionSerializer(LoadTestSessionSerializer):
    """The answer to a start: the session, and what may keep its load from starting now."""

    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="E.g. fewer free load worker processes than the session has shards.",
    )

    class Meta(LoadTestSessionSerializer.Meta):
        fields = [*LoadTestSessionSerializer.Meta.fields, "warnings"]


class ScheduleSerializer(serializers.ModelSerializer):
    """A schedule of load; beat's PeriodicTask behind it is the services' business."""

    # An integer id, not anything Django can turn into one (1.5 would silently be 1).
    template = serializers.PrimaryKeyRelatedField(
        queryset=LoadTestSession.objects.all(),
        pk_field=serializers.IntegerField(),
        help_text="The session whose configuration each run copies.",
    )
    window_days = serializers.JSONField(default=list, decoder=BoundedJSONDecoder)
    created_by = serializers.StringRelatedField()
    runs = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "template",
            "interval_seconds",
            "crontab",
            "window_days",
            "window_start",
            "window_end",
            "time_zone",
            "run_duration_minutes",
            "enabled",
            "created_by",
            "created_at",
            "last_run_at",
            "last_skipped_at",
            "skipped_runs",
            "last_message",
            "runs",
        ]
        read_only_fields = [
            "created_at",
            "last_run_at",
            "last_skipped_at",
            "skipped_runs",
            "last_message",
        ]

    def get_runs(self, schedule: Schedule) -> list[int]:
        """The ids of the newest runs (sessions), newest first."""
        return list(schedule.runs.order_by("-pk").values_list("pk", flat=True)[:20])

    # Saved through the services, as in the admin: the same checks, owner and PeriodicTask.
    def create(self, validated_data):
        user = self.context["request"].user
        return save_schedule(Schedule(**validated_data), user=user)

    def update(self, schedule, validated_data):
        for name, value in validated_data.items():
            setattr(schedule, name, value)
        return save_schedule(schedule, user=self.context["request"].user)
