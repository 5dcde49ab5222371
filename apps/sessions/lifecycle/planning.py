"""The plan: the frozen, self-contained instructions every shard of a session executes,
built once when the session starts."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.sessions.catalog.defaults import catalog_weights
from apps.sessions.catalog.flows import endpoint_variables, extracted_names
from apps.sessions.models import DataFeed, Endpoint, LoadTestSession, Target
from apps.sessions.validation import (
    check_endpoint_url,
    check_host_header,
    check_target_url,
    effective_weights,
    template_problems,
)
from apps.workers.plan import EndpointPlan, FeedPlan, FlowPlan, Plan, StepPlan


def build_plan(session: LoadTestSession) -> Plan:
    """The frozen, self-contained instructions every shard of the session executes.

    The allow-list is checked again here: the environment may have changed since the target
    was saved. The single endpoints with weight come first, then, per flow with weight, its
    steps (weight 0, ``flow`` set: they are sent only as steps), and the flows themselves.
    """
    errors: dict[str, list[str]] = {}
    try:
        check_target_url(session.target.base_url)
    except ValidationError as exc:
        errors["target"] = exc.messages
    weights = effective_weights(catalog_weights(session.target), session.endpoint_weights)
    endpoints = []

    def add_endpoint(endpoint: Endpoint, **fields) -> None:
        try:
            check_endpoint_url(endpoint.url)
            check_host_header(endpoint.absolute_url(), endpoint.headers)
        except ValidationError as exc:
            errors.setdefault("endpoints", []).extend(
                f"{fields['name']}: {message}" for message in exc.messages
            )
        endpoints.append(
            EndpointPlan(
                method=endpoint.method,
                url=endpoint.absolute_url(),
                timeout_s=endpoint.timeout_s,
                headers=endpoint.headers,
                body=endpoint.body,
                endpoint_id=endpoint.pk,
                expected_statuses=endpoint.expected_statuses,
                checks=tuple(endpoint.checks or ()),
                **fields,
            )
        )

    for endpoint in session.target.endpoints.order_by("name"):
        weight = weights[endpoint.name]
        if weight > 0:
            add_endpoint(endpoint, name=endpoint.name, weight=weight)
    flows: list[FlowPlan] = []
    for flow in session.target.flows.order_by("name").prefetch_related("steps__endpoint"):
        weight = weights[flow.name]
        if weight <= 0:
            continue
        steps = list(flow.steps.all())
        # The endpoints may have changed since the flow was saved: its variables again.
        known: set[str] = set()
        for step in steps:
            missing = sorted(endpoint_variables(step.endpoint) - known)
            if missing:
                errors.setdefault("flows", []).append(
                    f"Flow '{flow.name}', step {step.position} ({step.endpoint.name}): its "
                    f"templates use {', '.join(missing)}, which no earlier step extracts."
                )
            known.update(extracted_names(step))
        step_plans = []
        for step in steps:
            add_endpoint(
                step.endpoint,
                name=step_plan_name(flow.name, step.position, step.endpoint.name),
                weight=0.0,
                flow=len(flows),
            )
            step_plans.append(
                StepPlan(
                    endpoint=len(endpoints) - 1,
                    think_time_s=step.think_time_s,
                    extract=tuple(step.extract or ()),
                )
            )
        flows.append(
            FlowPlan(name=flow.name, weight=weight, steps=tuple(step_plans), flow_id=flow.pk)
        )
    if not endpoints:
        errors.setdefault("endpoint_weights", []).append(
            "No endpoint of this target has a positive weight, and no flow: nothing to send."
        )
    if errors:
        raise ValidationError(errors)
    plan = Plan(
        session_id=session.pk,
        endpoints=tuple(endpoints),
        flows=tuple(flows),
        request_interval_min=session.request_interval_min,
        request_interval_max=session.request_interval_max,
        target_rps=session.target_rps,
        ramp_up_s=session.ramp_up_seconds,
        duration_s=None if session.runs_until_stopped else float(session.duration_minutes) * 60,
        request_log=session.enable_logging,
        session_header=settings.SESSION_HEADER_NAME if session.send_session_header else "",
        traceparent=session.send_traceparent,
        feed=feed_plan(session.target),
    )
    problems = template_problems(plan)  # variables outside flows, feed columns it lacks
    if problems:
        raise ValidationError({"endpoints": problems})
    return plan


def feed_plan(target: Target) -> FeedPlan | None:
    """The target's data feed as the shards take it, or None when it has none."""
    feed = DataFeed.objects.filter(target=target).first()
    if feed is None:
        return None
    return FeedPlan(
        columns=tuple(feed.columns),
        rows=tuple(tuple(row) for row in feed.rows),
        mode=feed.mode,
        name=feed.filename,
    )


# A step's name in the plan and its statistics, "shop \u203a 2. cart-add" (a single right
# angle quote): within the 100 characters of a statistics row's name, the flow's name
# shortened if need be.
STEP_NAME_CHARS_MAX = 100
STEP_NAME_SEPARATOR = " \u203a "


def step_plan_name(flow_name: str, position: int, endpoint_name: str) -> str:
    tail = f"{STEP_NAME_SEPARATOR}{position}. {endpoint_name}"
    room = STEP_NAME_CHARS_MAX - len(tail)
    if len(flow_name) > room:
        flow_name = flow_name[: max(room - 3, 0)] + "..."
    return (flow_name + tail)[:STEP_NAME_CHARS_MAX]
