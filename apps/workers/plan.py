"""The plan: everything a session's shards execute, frozen when the session starts.

The control plane builds it (``planning.build_plan``: absolute URLs, effective weights, checked
against the allow-list) and stores ``to_json()`` in the session's row and, dumped, in Redis;
whoever reads it back (a shard, the monitor, an export) reads it with ``from_json``. A field
added here is added once: ``to_json`` and ``from_json`` follow the dataclasses' fields.

An endpoint is known by its position in ``endpoints`` for the session's whole life: the
statistics shards flush are keyed by it (see ``stats``), which keeps the hot loop's keys short.

``version`` grows when a field changes meaning or goes away; a plan of a version this code
does not know is refused with ``PlanVersionError`` rather than misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

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
