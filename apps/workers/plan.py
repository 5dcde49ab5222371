"""The plan: everything a session's shards execute, frozen when the session starts.

The control plane builds it (``planning.build_plan``: absolute URLs, effective weights, checked
against the allow-list) and stores ``to_json()`` in the session's row and, dumped, in Redis;
whoever reads it back (a shard, the monitor, an export) reads it with ``from_json``. A field
added here is added once: ``to_json`` and ``from_json`` follow the dataclasses' fields.

An endpoint is known by its position in ``endpoints`` for the session's whole life: the
statistics shards flush are keyed by it (see ``stats``), which keeps the hot loop's keys short.

``version`` grows when a field changes meaning or goes away; a plan of a version this code
does not know is refused with ``PlanVersionError`` rather than misread.

Redis is not trusted to keep the plan as the control plane wrote it: anyone who can write to
it could point a shard at a host or port the allow-list refuses. So the copy in Redis carries
an HMAC-SHA256 of its text under a key derived from SECRET_KEY (which every process of the
service shares), and a shard runs only a plan whose signature holds and whose every URL is
on the allow-list it was started with (``read_trusted_plan``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadtest_project import allowlist

PLAN_VERSION = 1


class PlanVersionError(ValueError):
    """A stored plan of a version this code cannot read."""


@dataclass(frozen=True)
class EndpointPlan:
    """One request the virtual users may send, resolved from the catalog."""

    name: str
    method: str
    url: str  # absolute: the target's base URL and the endpoint's path
    timeout_s: float
    weight: float  # effective: the session's endpoint_weights over the endpoint's own
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    endpoint_id: int | None = None  # the catalog row, if any (it may be deleted later)
    # What a right answer is (see ``checks``): statuses counted as successes, and response
    # checks as the catalog holds them (JSON-ready; compiled by each shard).
    expected_statuses: str = "200-399"
    checks: tuple[Mapping[str, Any], ...] = ()
    # A step of a flow (the flow's position in ``Plan.flows``) rather than a request picked
    # by weight on its own: its weight is 0 and its name says flow and step.
    flow: int | None = None


@dataclass(frozen=True)
class StepPlan:
    """One step of a flow: the request at ``endpoint`` (a position in ``Plan.endpoints``), the
    values to extract from its answer for the later steps (JSON-ready, as the catalog holds
    them: see ``extraction``), and the think time after it."""

    endpoint: int
    think_time_s: float = 0.0
    extract: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class FlowPlan:
    """An ordered list of steps a virtual user runs as one iteration, picked by weight beside
    the single endpoints."""

    name: str
    weight: float
    steps: tuple[StepPlan, ...]
    flow_id: int | None = None  # the catalog row, if any


@dataclass(frozen=True)
class FeedPlan:
    """The target's data feed, shipped whole with the plan: rows of strings, one per CSV line,
    handed to users ``sequential``-ly, at ``random`` or one ``per_user`` (see ``feeds``)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    mode: str = "sequential"
    name: str = ""


@dataclass(frozen=True)
class Plan:
    """A session's load, as its shards execute it."""

    endpoints: tuple[EndpointPlan, ...]
    request_interval_min: float  # think time, seconds (closed model)
    request_interval_max: float
    target_rps: float | None = None  # the open model's rate; None: the closed model
    ramp_up_s: float = 0.0
    # Counted from the load's start (the first shard to run), not from the start call: shards
    # may wait in the queue for a free worker process. None: until stopped.
    duration_s: float | None = None
    request_log: bool = False  # the session's enable_logging
    session_id: int | None = None
    # For the target's APM: the header naming the session on every request ("": none) and
    # whether each request carries a fresh W3C traceparent (see ``http.prepare``).
    session_header: str = ""
    traceparent: bool = False
    # Multi-step flows (their steps are in ``endpoints``, with ``flow`` set) and the
    # target's data feed, if any.
    flows: tuple[FlowPlan, ...] = ()
    feed: FeedPlan | None = None
    version: int = PLAN_VERSION

    @property
    def open_model(self) -> bool:
        return bool(self.target_rps)

    def pick_weights(self) -> list[float]:
        """What a user picks from, by weight: every endpoint (a flow's steps have weight 0),
        then every flow. Live weights (``control.set_endpoint_weights``) have this shape."""
        return [endpoint.weight for endpoint in self.endpoints] + [
            flow.weight for flow in self.flows
        ]

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data (a dict of plain values)."""
        data = asdict(self)
        data["endpoints"] = [
            {
                **endpoint,
                "headers": dict(endpoint["headers"]),
                "checks": [dict(check) for check in endpoint["checks"]],
            }
            for endpoint in data["endpoints"]
        ]
        data["flows"] = [
            {
                **flow,
                "steps": [
                    {**step, "extract": [dict(item) for item in step["extract"]]}
                    for step in flow["steps"]
                ],
            }
            for flow in data["flows"]
        ]
        if data["feed"] is not None:
            data["feed"] = {
                **data["feed"],
                "columns": list(data["feed"]["columns"]),
                "rows": [list(row) for row in data["feed"]["rows"]],
            }
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Read a plan written by ``to_json`` (or by a release before plans had versions)."""
        version = data.get("version", 0)
        if version == 0:
            data = _from_unversioned(data)
        elif version != PLAN_VERSION:
            raise PlanVersionError(
                f"This plan is version {version!r}; this release reads plans of version "
                f"{PLAN_VERSION} (and older ones). Run the web, control and load workers from "
                "the same release."
            )
        endpoints = tuple(
            EndpointPlan(**{**endpoint, "checks": tuple(endpoint.get("checks") or ())})
            for endpoint in data["endpoints"]
        )
        flows = tuple(
            FlowPlan(
                **{
                    **flow,
                    "steps": tuple(
                        StepPlan(**{**step, "extract": tuple(step.get("extract") or ())})
                        for step in flow["steps"]
                    ),
                }
            )
            for flow in data.get("flows") or ()
        )
        raw_feed = data.get("feed")
        feed = (
            FeedPlan(
                **{
                    **raw_feed,
                    "columns": tuple(raw_feed["columns"]),
                    "rows": tuple(tuple(row) for row in raw_feed["rows"]),
                }
            )
            if raw_feed
            else None
        )
        return cls(**{**data, "endpoints": endpoints, "flows": flows, "feed": feed})


def _from_unversioned(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plan as written before plans had a version (the JSON of sessions started then, in
    the database and, for a week at most, in Redis): ``ramp_up_seconds`` and an endpoint's
    ``id`` had other names."""
    renamed = {key: value for key, value in data.items() if key != "ramp_up_seconds"}
    renamed["ramp_up_s"] = float(data.get("ramp_up_seconds") or 0.0)
    renamed["endpoints"] = [
        {
            **{key: value for key, value in endpoint.items() if key != "id"},
            "endpoint_id": endpoint.get("id"),
        }
        for endpoint in data["endpoints"]
    ]
    renamed["version"] = PLAN_VERSION
    return renamed


class PlanNotTrusted(ValueError):
    """A plan read from Redis that a shard refuses to run: its signature does not hold, or
    it sends load off the allow-list. The message says which, for the session's events."""


def plan_signing_key(secret_key: str) -> bytes:
    """The key plans are signed with: derived from SECRET_KEY for this one purpose, so a
    signature made here is worth nothing to any other use of SECRET_KEY, and back."""
    return hashlib.sha256(b"loadtest.plan-signature\0" + secret_key.encode()).digest()


def _signature(text: bytes, key: bytes) -> bytes:
    return hmac.new(key, text, hashlib.sha256).hexdigest().encode()


def signed_plan_text(plan: Plan, key: bytes) -> bytes:
    """The plan as stored in Redis: its signature (hex), a dot, its JSON."""
    text = json.dumps(plan.to_json()).encode()
    return _signature(text, key) + b"." + text


def read_trusted_plan(raw: bytes, key: bytes, allowed_hosts: Iterable[str]) -> Plan:
    """The plan stored in Redis, if this service signed it and it sends load only where the
    allow-list says; ``PlanNotTrusted`` otherwise. The allow-list is checked again here, not
    only at save time, because the shard is the last place before the bytes leave."""
    signature, dot, text = raw.partition(b".")
    if not dot or not hmac.compare_digest(signature, _signature(text, key)):
        raise PlanNotTrusted(
            "Refused to run the plan stored in Redis: its signature does not match (it was "
            "changed in Redis, or the processes do not share one SECRET_KEY). Nothing was sent."
        )
    plan = Plan.from_json(json.loads(text))
    off_list = urls_off_list(plan, allowed_hosts)
    if off_list:
        raise PlanNotTrusted(
            "Refused to run the plan stored in Redis: it sends load off this worker's "
            f"ALLOWED_TARGET_HOSTS ({', '.join(off_list[:3])}). Nothing was sent."
        )
    return plan


def urls_off_list(plan: Plan, allowed_hosts: Iterable[str]) -> list[str]:
    """Each URL (or Host header) of the plan that the allow-list does not admit."""
    entries = list(allowed_hosts)
    refused = []
    for endpoint in plan.endpoints:
        try:
            parts = urlsplit(endpoint.url)
            port = parts.port or allowlist.DEFAULT_PORTS.get(parts.scheme)
            host_header = next(
                (value for name, value in endpoint.headers.items() if name.lower() == "host"),
                None,
            )
            host_parts = urlsplit(f"//{host_header}") if host_header is not None else None
            host_port = (host_parts.port or port) if host_parts is not None else None
        except ValueError:
            refused.append(endpoint.url)
            continue
        if port is None or not allowlist.is_allowed(entries, parts.hostname, port, parts.scheme):
            refused.append(endpoint.url)
        elif host_parts is not None and (
            host_port is None
            or not allowlist.is_allowed(entries, host_parts.hostname, host_port, parts.scheme)
        ):
            refused.append(f"Host: {host_header}")
    return refused
