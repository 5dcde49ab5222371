"""JSON shapes of the catalog: targets, endpoints, flows and data feeds."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from apps.sessions.access.masking import (
    REVEAL_SECRETS,
    kept_if_sent_back,
    masked_request,
    may_see_secrets,
)
from apps.sessions.api.surfaces import serializer_via
from apps.sessions.catalog.feed_csv import PREVIEW_ROWS
from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.catalog.flows import check_flow, steps_as_data, steps_from_data
from apps.sessions.models import DataFeed, Endpoint, Flow, FlowStep, Target
from apps.sessions.validation import (
    TIMEOUT_S_MAX,
    TIMEOUT_S_MIN,
    check_endpoint_templates,
    check_headers,
    check_host_header,
    check_single_line,
)
from apps.workers.checks import normalise_statuses, parse_checks
from apps.workers.secrets import REDACTED


class TargetSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=100, required=False, validators=[check_single_line])

    class Meta:
        model = Target
        fields = [
            "id",
            "name",
            "base_url",
            "description",
            "baseline_session",
            "regression_margin_pct",
            "created_at",
            "updated_at",
        ]
        # Set through POST/DELETE /api/sessions/{id}/baseline/ (set_baseline).
        read_only_fields = ["baseline_session"]

    def validate(self, attrs):
        if not attrs.get("name") and "base_url" in attrs:
            attrs["name"] = attrs["base_url"][: Target._meta.get_field("name").max_length]
        if attrs.get("name") and (
            Target.objects.filter(name=attrs["name"])
            .exclude(pk=getattr(self.instance, "pk", None))
            .exists()
        ):
            raise serializers.ValidationError({"name": "A target with this name already exists."})
        return attrs


class EndpointSerializer(serializers.ModelSerializer):
    # An integer id, not anything Django can turn into one (1.5 would silently be 1).
    target = serializers.PrimaryKeyRelatedField(
        queryset=Target.objects.all(), pk_field=serializers.IntegerField()
    )
    timeout = serializers.FloatField(
        source="timeout_s", required=False, min_value=TIMEOUT_S_MIN, max_value=TIMEOUT_S_MAX
    )

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "target",
            "name",
            "url",
            "method",
            "weight",
            "timeout",
            "description",
            "headers",
            "body",
            "expected_statuses",
            "checks",
            "created_at",
            "updated_at",
        ]

    def validate_expected_statuses(self, spec):
        """Stored normalised (``200-299,300-399`` becomes ``200-399``)."""
        try:
            return normalise_statuses(spec)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_checks(self, checks):
        try:
            parse_checks(checks)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return checks

    def validate_headers(self, headers):
        try:
            check_headers(headers)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        # A client sending back what it read keeps the stored secret rather than "[redacted]".
        stored = self.instance.headers if self.instance is not None else {}
        return {
            name: stored[name] if value == REDACTED and name in stored else value
            for name, value in headers.items()
        }

    def validate(self, attrs):
        """A custom Host header goes through the allow-list, as the URL does."""
        endpoint = Endpoint(
            **{
                name: attrs.get(name, getattr(self.instance, name, None))
                for name in ("target", "url", "headers", "name")
            }
        )
        try:
            endpoint.check_name_free_of_flows()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if endpoint.target is not None and endpoint.url:
            try:
                check_host_header(endpoint.absolute_url(), endpoint.headers)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"headers": exc.messages}) from exc
        self._check_templates(attrs)
        return attrs

    def to_internal_value(self, data):
        """A body or URL sent back as it was read masked keeps the stored one (replaced
        before the fields' own checks, which "[redacted]" in a URL would fail)."""
        if self.instance is not None and isinstance(data, dict):
            data = data.copy()  # a dict, or a form's QueryDict
            for name in ("body", "url"):
                if isinstance(data.get(name), str):
                    data[name] = kept_if_sent_back(
                        data[name],
                        getattr(self.instance, name),
                        self.instance.headers,
                        self.instance.url,
                    )
        return super().to_internal_value(data)

    def _check_templates(self, attrs: dict) -> None:
        """The request templates, as ``Endpoint.clean`` checks them for the admin and files."""
        fields = {
            name: attrs.get(name, getattr(self.instance, name, None))
            for name in ("url", "headers", "body")
        }
        try:
            check_endpoint_templates(**fields)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc

    def to_representation(self, endpoint):
        data = super().to_representation(endpoint)
        if not self._reveal():
            data["headers"], data["body"], data["url"] = masked_request(
                endpoint.headers, endpoint.body, endpoint.url
            )
        return data

    def _reveal(self) -> bool:
        """``?reveal=true``, for the roles that may edit endpoints: secrets are shown only
        when asked, so a script listing the catalog never prints them by accident."""
        request = self.context.get("request")
        asked = request is not None and request.query_params.get("reveal") in ("1", "true")
        if asked and not may_see_secrets(request.user):
            raise PermissionDenied(
                "Your role does not allow you to reveal endpoint secrets (it needs the "
                f"permission {REVEAL_SECRETS}; see the roles in the README)."
            )
        return asked


class FlowSerializer(serializers.ModelSerializer):
    """A flow with its steps nested: ``steps`` is written whole (each ``{endpoint: <id or
    name>, think_time_s, extract}``) and read with each step's position and endpoint name.
    Checked and saved by ``save_flow``, as from the admin and the dashboard."""

    target = serializers.PrimaryKeyRelatedField(
        queryset=Target.objects.all(), pk_field=serializers.IntegerField()
    )
    steps = serializers.JSONField(
        help_text='E.g. [{"endpoint": "login", "think_time_s": 0.5, "extract": [{"name": '
        '"csrf_token", "json_path": "$.csrf_token"}]}, {"endpoint": "cart-view"}].'
    )

    class Meta:
        model = Flow
        fields = ["id", "target", "name", "weight", "description", "steps", "created_at",
                  "updated_at"]  # fmt: skip
        validators: list = []  # one target, one name: checked by flows.check_flow, by field

    def validate(self, attrs):
        flow = self.instance or Flow()
        target = attrs.get("target", getattr(self.instance, "target", None))
        try:
            if "steps" in attrs:
                steps = steps_from_data(target, attrs["steps"])
            else:  # a PATCH without steps keeps them
                steps = [
                    FlowStep(
                        endpoint=step.endpoint,
                        think_time_s=step.think_time_s,
                        extract=step.extract,
                    )
                    for step in flow.steps.select_related("endpoint")
                ]
            candidate = Flow(
                pk=flow.pk,
                target=target,
                name=attrs.get("name", flow.name),
                weight=attrs.get("weight", flow.weight),
                description=attrs.get("description", flow.description),
            )
            check_flow(candidate, steps)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        attrs["steps"] = steps
        return attrs

    def to_representation(self, flow):
        data = super().to_representation(flow)
        data["steps"] = steps_as_data(flow.steps.all())
        return data

    def create(self, validated_data):
        steps = validated_data.pop("steps")
        flow = Flow(**validated_data)
        return save_flow(
            flow, steps, user=self.context["request"].user, via=serializer_via(self.context)
        )

    def update(self, flow, validated_data):
        steps = validated_data.pop("steps")
        for name, value in validated_data.items():
            setattr(flow, name, value)
        return save_flow(
            flow, steps, user=self.context["request"].user, via=serializer_via(self.context)
        )


class DataFeedSerializer(serializers.ModelSerializer):
    """A target's data feed as the API shows it: what it is and its first rows, never the
    whole file (``GET /api/targets/{id}/feed/``)."""

    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    preview = serializers.SerializerMethodField()

    class Meta:
        model = DataFeed
        fields = [
            "target",
            "filename",
            "columns",
            "row_count",
            "size_bytes",
            "sha256",
            "mode",
            "uploaded_at",
            "uploaded_by",
            "preview",
        ]
        read_only_fields = fields

    def get_preview(self, feed: DataFeed) -> list[list[str]]:
        """The first rows (PREVIEW_ROWS), each a list of values in the columns' order."""
        return feed.preview(PREVIEW_ROWS)
