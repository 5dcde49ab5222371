"""A plan's endpoints made ready once per shard, so that sending one only indexes lists.

For each endpoint, by position: its request (the bytes, built once, or its compiled
template; or the ValueError saying why it cannot be built), its response rules (expected
statuses and checks) and what a flow's step takes from its answer. Building them when the
shard starts keeps parsing and compiling out of the hot loop, and tells the HTTP client, once,
what to keep of each answer: enough of the body for the checks and extractions that read it,
the headers when one reads them, the cookies when the plan has flows (a login must hold).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .checks import ResponseRules
from .extraction import Extraction, parse_extractions
from .http import PreparedRequest
from .plan import EndpointPlan, Plan
from .templated_requests import TemplatedRequest, compile_request

# An endpoint's request: fixed bytes, a template rendered per request, or why neither could
# be built (every pick of the endpoint then fails as an ``application`` error, reported once
# a minute).
EndpointRequest = PreparedRequest | TemplatedRequest | ValueError


@dataclass(frozen=True)
class PreparedEndpoints:
    """Per plan endpoint, by position."""

    requests: list[EndpointRequest]
    rules: list[ResponseRules]
    extractions: list[tuple[Extraction, ...]]  # empty but for flow steps that extract
    keep_cookies: bool  # users keep the target's cookies (the plan has flows)


def prepare_endpoints(plan: Plan, *, session_id: int, check_body_limit: int) -> PreparedEndpoints:
    """``check_body_limit``: how much of a body a check or an extraction may read.
    The session's header, the same on every request, goes into the prepared bytes; a
    traceparent is spliced into them per request (``PreparedRequest.traced``)."""
    extractions: list[tuple[Extraction, ...]] = [() for _ in plan.endpoints]
    for flow in plan.flows:
        for step in flow.steps:
            extractions[step.endpoint] = parse_extractions(list(step.extract))
    keep_cookies = bool(plan.flows)
    session_headers = {plan.session_header: str(session_id)} if plan.session_header else {}
    rules = [
        ResponseRules(endpoint.expected_statuses, list(endpoint.checks), check_body_limit)
        for endpoint in plan.endpoints
    ]
    columns = plan.feed.columns if plan.feed is not None else ()
    requests = [
        _prepare(
            endpoint, endpoint_rules, endpoint_extractions, session_headers, plan.traceparent,
            columns, keep_cookies, check_body_limit,
        )
        for endpoint, endpoint_rules, endpoint_extractions in zip(
            plan.endpoints, rules, extractions, strict=True
        )
    ]  # fmt: skip
    return PreparedEndpoints(requests, rules, extractions, keep_cookies)


def _prepare(
    endpoint: EndpointPlan,
    rules: ResponseRules,
    extractions: tuple[Extraction, ...],
    session_headers: dict[str, str],
    traceparent: bool,
    columns: tuple[str, ...],
    keep_cookies: bool,
    check_body_limit: int,
) -> EndpointRequest:
    """The endpoint's request, built once: its bytes, or its compiled template; or why it
    cannot be built. An endpoint whose checks or extractions read the body or headers asks
    the client to keep them, and a plan with flows its cookies."""
    try:
        request = compile_request(
            endpoint,
            default_headers=session_headers,
            traceparent=traceparent,
            columns=columns,
        )
    except ValueError as exc:
        return exc
    prepared = request.prepared if isinstance(request, TemplatedRequest) else request
    body_limit = rules.body_limit
    if any(extraction.source != "header" for extraction in extractions):
        body_limit = max(body_limit, check_body_limit)
    keep_headers = rules.needs_headers or any(
        extraction.source == "header" for extraction in extractions
    )
    if body_limit > prepared.body_limit or keep_headers or keep_cookies:
        prepared = replace(
            prepared,
            body_limit=max(prepared.body_limit, body_limit),
            keep_headers=keep_headers,
            keep_cookies=keep_cookies,
        )
        if isinstance(request, TemplatedRequest):
            return replace(request, prepared=prepared)
        return prepared
    return request
