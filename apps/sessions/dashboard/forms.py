"""The New session / Clone form, validated by the API's serializer: one set of rules.

The page sends one input per session field and one weight input per endpoint of the chosen
target; this module turns them into the API's configuration body, lets
``LoadTestSessionSerializer`` judge it (the same messages as ``POST /api/sessions/``), and
files each message next to its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apps.sessions.api.serializers.sessions import LoadTestSessionSerializer
from apps.sessions.choices import Via
from apps.sessions.lifecycle.editing import CLONE_DEFAULT
from apps.sessions.models import Endpoint, Flow, LoadTestSession, Target
from apps.sessions.results.configuration import configuration_at
from apps.sessions.validation import tags_from_text

# The defaults, as the serializer applies them (one place: its fields).
_FIELDS = LoadTestSessionSerializer().fields
NUMBER_FIELDS = (
    "concurrent_users",
    "duration_minutes",
    "request_interval_min",
    "request_interval_max",
    "max_errors_per_minute",
    "target_rps",
    "ramp_up_seconds",
)
# Check boxes: a form posts only the checked ones.
BOOLEAN_FIELDS = ("enable_logging", "send_session_header", "send_traceparent")
OPEN_MODEL, CLOSED_MODEL = "open", "closed"
_QUOTED_NAME = re.compile(r"'([^']*)'")


def seed_defaults() -> dict[str, object]:
    values: dict[str, object] = {"session_name": "", "thresholds": "", "tags": ""}
    for name in BOOLEAN_FIELDS:  # the model's defaults (the serializer's fields take them)
        values[name] = LoadTestSession._meta.get_field(name).default
    for name in NUMBER_FIELDS:
        default = _FIELDS[name].default
        values[name] = "" if default is None else default
    return values


@dataclass
class WeightInput:
    """One endpoint's (or flow's) weight input: its default, the value shown, and its own
    errors. A session's ``endpoint_weights`` names either."""

    endpoint: Endpoint | Flow
    value: object
    errors: list[str] = field(default_factory=list)

    @property
    def is_flow(self) -> bool:
        return isinstance(self.endpoint, Flow)

    @property
    def input_name(self) -> str:
        kind = "flow_" if self.is_flow else ""
        return f"weight_{kind}{self.endpoint.pk}"


@dataclass
class SessionForm:
    """What the form shows (values, the target's weight inputs) and what was wrong with it."""

    target: Target | None
    values: dict[str, object]
    weights: list[WeightInput]
    model: str = CLOSED_MODEL
    errors: dict[str, list[str]] = field(default_factory=dict)
    session: LoadTestSession | None = None

    @classmethod
    def blank(cls, target: Target | None) -> SessionForm:
        return cls.for_config(target, seed_defaults(), {})

    @classmethod
    def clone_of(cls, session: LoadTestSession, which: str = CLONE_DEFAULT) -> SessionForm:
        """Prefilled with ``session``'s configuration (named "... (copy)"), its users and
        weights as configured at the start or as it ended (``which``, as the API's clone)."""
        config = configuration_at(session, which)
        values = {name: config[name] for name in ("session_name", *NUMBER_FIELDS)}
        values["session_name"] = f"{session.session_name} (copy)"[:200]
        for name in BOOLEAN_FIELDS:
            values[name] = config[name]
        values["thresholds"] = "\n".join(config["thresholds"] or [])
        values["tags"] = ", ".join(config["tags"] or [])
        values["target_rps"] = "" if config["target_rps"] is None else config["target_rps"]
        form = cls.for_config(session.target, values, config["endpoint_weights"] or {})
        form.model = OPEN_MODEL if config["target_rps"] else CLOSED_MODEL
        return form

    @classmethod
    def for_config(cls, target, values, weight_overrides) -> SessionForm:
        endpoints: list[Endpoint | Flow] = []
        if target is not None:
            endpoints = [*target.endpoints.order_by("name"), *target.flows.order_by("name")]
        weights = [
            WeightInput(endpoint, weight_overrides.get(endpoint.name, endpoint.weight))
            for endpoint in endpoints
        ]
        return cls(target=target, values=values, weights=weights)

    @classmethod
    def from_post(cls, target: Target | None, post) -> SessionForm:
        values: dict[str, object] = {name: post.get(name, "").strip() for name in NUMBER_FIELDS}
        values["session_name"] = post.get("session_name", "")
        for name in BOOLEAN_FIELDS:
            values[name] = post.get(name) == "on"
        values["thresholds"] = post.get("thresholds", "")
        values["tags"] = post.get("tags", "")
        form = cls.for_config(target, values, {})
        form.model = OPEN_MODEL if post.get("model") == OPEN_MODEL else CLOSED_MODEL
        for weight in form.weights:
            weight.value = post.get(weight.input_name, "").strip()
        return form

    def api_body(self) -> dict[str, object]:
        """The configuration body, as a client of ``POST /api/sessions/`` would send it."""
        body = {name: self.values[name] for name in ("session_name", *BOOLEAN_FIELDS)}
        for name in NUMBER_FIELDS:
            if self.values[name] != "":
                body[name] = self.values[name]
            elif name != "target_rps":
                # The form shows every default, so an empty input was cleared on purpose, or
                # emptied by the browser because it could not read it (NaN, 1e400): saying so
                # beats starting a run with a default nobody typed.
                self.errors.setdefault(name, []).append("Enter a number.")
        # The model is chosen by the radio button, not by whether a rate was left typed in.
        body["target_rps"] = self.values["target_rps"] or None if self.model == OPEN_MODEL else None
        if self.model == OPEN_MODEL and body["target_rps"] is None:
            self.errors.setdefault("target_rps", []).append(
                "The open model needs a target rate (requests/s)."
            )
        if self.target is not None:
            body["target"] = self.target.pk
        body["endpoint_weights"] = {w.endpoint.name: _number(w.value) for w in self.weights}
        # One threshold per line; blank lines are spacing, not thresholds.
        lines = str(self.values.get("thresholds") or "").splitlines()
        body["thresholds"] = [line.strip() for line in lines if line.strip()]
        body["tags"] = tags_from_text(str(self.values.get("tags") or ""))
        return body

    def save(self, request) -> LoadTestSession | None:
        """Create the session through the serializer (and so ``services``); None if invalid."""
        body = self.api_body()
        serializer = LoadTestSessionSerializer(
            data=body, context={"request": request, "via": Via.PAGE}
        )
        if not serializer.is_valid() or self.errors:
            self._file_errors(serializer.errors if serializer.errors else {})
            return None
        self.session = serializer.save()
        return self.session

    def _file_errors(self, errors) -> None:
        for name, messages in errors.items():
            messages = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
            if name != "endpoint_weights":
                self.errors.setdefault(name, []).extend(messages)
                continue
            by_name = {w.endpoint.name: w for w in self.weights}
            for message in messages:
                quoted = _QUOTED_NAME.search(message)
                weight = by_name.get(quoted.group(1)) if quoted else None
                if weight is not None:
                    weight.errors.append(message)
                else:
                    self.errors.setdefault("endpoint_weights", []).append(message)


def _number(text: object) -> object:
    """A typed weight as a number; anything else as typed, for the serializer to refuse by name."""
    if not isinstance(text, str):
        return text
    try:
        return float(text) if text != "" else text
    except ValueError:
        return text
