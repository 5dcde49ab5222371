"""What to load: targets, their endpoints, multi-step flows and data feeds."""

import contextlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.sessions import validation
from apps.sessions.choices import FeedMode, HttpMethod
from apps.workers.checks import DEFAULT_EXPECTED_STATUSES, STATUSES_CHARS_MAX, normalise_statuses
from apps.workers.secrets import endpoint_secrets, mask_secrets


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
    # comparison.py); set and cleared only through baselines.set_baseline / clear_baseline.
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

    def mix_weights(self) -> dict[str, float]:
        """Name -> own weight of what a session of this target mixes: its endpoints and its
        flows (their names never clash). On the model, so that the results (below the
        catalog's services) read the same mix the services do."""
        return {
            **dict(self.endpoints.values_list("name", "weight")),
            **dict(self.flows.values_list("name", "weight")),
        }

    def margin_pct(self) -> float:
        """The regression margin of this target: its own, or the setting's."""
        if self.regression_margin_pct is not None:
            return self.regression_margin_pct
        return float(settings.REGRESSION_MARGIN_PCT)


class Endpoint(models.Model):
    """One request the virtual users may send: a path on its target, a method, a weight."""

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
        # Shown to every role (titles, choices, the admin's log): a key in the URL is masked.
        url = mask_secrets(self.url, endpoint_secrets(self.headers, self.body, self.url))
        return f"{self.name}: {self.method} {url}"

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
    ``flow_changes.save_flow``, which checks the flow and its steps together (``flows``).
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


class DataFeed(models.Model):
    """A target's data feed: rows of values (a CSV file with a header) that the templates of
    its endpoints read as ``{{ feed.<column> }}``, one row per iteration of a user.

    Stored parsed (``columns``, ``rows``), so that ``planning.build_plan`` ships it in the
    plan without parsing again; the file itself is not kept, only its name, size and a hash
    (for the configuration history). Changed only through ``feeds.save_feed`` and
    ``feeds.delete_feed``.
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
