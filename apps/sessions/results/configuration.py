"""What a run ran with: its load as configured at the start, as it ended, and its users over
time. The comparison needs it to compare like with like, and a clone to copy one or the
other.

A running session's users and weights can change live (``lifecycle/live.py``), and each
change overwrites the row's ``concurrent_users`` / ``endpoint_weights``: the row says how
the run *ended*. How it *started* is kept in two places that never change afterwards: the
plan frozen at the start (each endpoint's and flow's effective weight, the model, the think
time), and the configuration history, whose first live change of a field holds the value the
run started with as its ``old_value`` (read by ``what_ran``, as the report reads it).
Everything else (model, rate, think time, ramp-up, duration, target) cannot change once a
session has started, so the row holds it for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.sessions.models import LoadTestSession
from apps.sessions.results import what_ran
from apps.sessions.validation import effective_weights

START, END = "start", "end"
CONFIG_CHOICES = (START, END)
# Two mixes are the same when every endpoint's share of requests is within this fraction:
# weights 2 and 2 send the same mix as 1 and 1.
SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RunConfiguration:
    """One run's load: what may differ between two runs and change what they measure."""

    session_id: int
    users_start: int
    users_end: int
    # Time-weighted over the periods that recorded users (the chart's points); None when
    # none did (a run that never started, or results from before the users column).
    users_mean: float | None
    users_max: int | None
    # The session's own weight overrides (``endpoint_weights``) at the start and at the end,
    # and the effective mix they gave (name -> weight, what the shards picked from).
    overrides_start: dict[str, float]
    overrides_end: dict[str, float]
    mix_start: dict[str, float]
    mix_end: dict[str, float]
    target_rps: float | None
    request_interval_min: float
    request_interval_max: float
    ramp_up_s: float
    planned_duration_s: float | None  # None: until stopped
    duration_s: float
    target_id: int
    target_name: str
    base_url: str
    changed_live: tuple[str, ...] = field(default=())

    @property
    def model(self) -> str:
        return "open" if self.target_rps else "closed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "session": self.session_id,
            "users_start": self.users_start,
            "users_end": self.users_end,
            "users_mean": None if self.users_mean is None else round(self.users_mean, 1),
            "users_max": self.users_max,
            "weights_start": self.mix_start,
            "weights_end": self.mix_end,
            "changed_live": list(self.changed_live),
            "model": self.model,
            "target_rps": self.target_rps,
            "request_interval_min": self.request_interval_min,
            "request_interval_max": self.request_interval_max,
            "ramp_up_s": self.ramp_up_s,
            "planned_duration_s": self.planned_duration_s,
            "duration_s": round(self.duration_s, 3),
            "target": self.target_id,
            "target_name": self.target_name,
            "base_url": self.base_url,
        }


def _plan_mix(session: LoadTestSession) -> dict[str, float] | None:
    """The effective weights the plan froze at the start: each single endpoint's, then each
    flow's (a flow's steps are never picked on their own)."""
    plan = session.read_plan()
    if plan is None:
        return None
    mix = {endpoint.name: endpoint.weight for endpoint in plan.endpoints if endpoint.flow is None}
    mix.update({flow.name: flow.weight for flow in plan.flows})
    return mix


def run_configuration(session: LoadTestSession) -> RunConfiguration:
    """``session``'s load at its start and at its end (the same for a run nobody changed).

    The users (at the start, the end, and over time) and the configuration at the start are
    ``what_ran``'s, the same the report and the session page show."""
    changes = what_ran.changes_while_running(session)
    users = what_ran.users_run(session, changes)
    at_start = what_ran.configuration_at_start(session, changes)
    changed_fields = {change.field for change in changes}
    overrides_end = dict(session.endpoint_weights or {})
    overrides_start = overrides_end
    if "endpoint_weights" in changed_fields and isinstance(at_start.get("endpoint_weights"), dict):
        overrides_start = dict(at_start["endpoint_weights"])
    mix_start = _plan_mix(session)
    if mix_start is None:  # never started: what it would start with
        mix_start = {
            name: weight
            for name, weight in effective_weights(
                session.target.mix_weights(), overrides_start
            ).items()
            if weight > 0
        }
    if "endpoint_weights" not in changed_fields:
        mix_end = dict(mix_start)
    else:
        # As the shards were told (``live.change_weights``): the overrides over the catalog's
        # weights (as the catalog is now), for what the plan holds.
        now = effective_weights(session.target.mix_weights(), overrides_end)
        mix_end = {name: float(now.get(name, 0.0)) for name in mix_start}
    changed = tuple(
        name
        for name, field_name in (("users", "concurrent_users"), ("weights", "endpoint_weights"))
        if field_name in changed_fields
    )
    duration_minutes = float(session.duration_minutes or 0)
    return RunConfiguration(
        session_id=session.pk,
        users_start=users.at_start,
        users_end=users.at_end,
        users_mean=users.mean,
        users_max=users.max,
        overrides_start=overrides_start,
        overrides_end=overrides_end,
        mix_start=mix_start,
        mix_end=mix_end,
        target_rps=session.target_rps,
        request_interval_min=session.request_interval_min,
        request_interval_max=session.request_interval_max,
        ramp_up_s=session.ramp_up_seconds,
        planned_duration_s=duration_minutes * 60 if duration_minutes else None,
        duration_s=session.duration_s(),
        target_id=session.target_id,
        target_name=session.target.name,
        base_url=session.target.base_url,
        changed_live=changed,
    )


def configuration_at(session: LoadTestSession, which: str) -> dict[str, Any]:
    """The session's configuration fields (``CONFIG_FIELDS``) as they were at ``which``:
    ``start`` (users and weights before any live change) or ``end`` (the row as it is)."""
    values = session.config()
    if which == START:
        config = run_configuration(session)
        values["concurrent_users"] = config.users_start
        values["endpoint_weights"] = dict(config.overrides_start)
    return values


def _changed(config: RunConfiguration) -> bool:
    return (
        config.users_start != config.users_end
        or config.overrides_start != config.overrides_end
        or not same_mix(config.mix_start, config.mix_end)
    )


def changed_while_running(session: LoadTestSession) -> bool:
    """Whether the run's users or weights at its end differ from those it started with."""
    return _changed(run_configuration(session))


CLONE_WORDS = {START: "as configured at the start", END: "as it ended"}


def clone_choices(session: LoadTestSession) -> list[dict[str, str]]:
    """What a clone of ``session`` may copy, each in words with its users and weights; empty
    when its start and its end are the same (one plain Clone then)."""
    config = run_configuration(session)
    if not _changed(config):
        return []
    return [
        {
            "config": START,
            "label": CLONE_WORDS[START],
            "detail": f"{config.users_start:,} users; {mix_text(config.mix_start)}",
        },
        {
            "config": END,
            "label": CLONE_WORDS[END],
            "detail": f"{config.users_end:,} users; {mix_text(config.mix_end)}",
        },
    ]


# --- differences between runs (pure) --------------------------------------------------------


def shares(mix: dict[str, float]) -> dict[str, float]:
    """Each name's share of the picks (weight 0 left out): the mix, whatever its scale."""
    total = sum(weight for weight in mix.values() if weight > 0)
    if not total:
        return {}
    return {name: weight / total for name, weight in mix.items() if weight > 0}


def same_mix(first: dict[str, float], second: dict[str, float]) -> bool:
    a, b = shares(first), shares(second)
    return set(a) == set(b) and all(abs(a[name] - b[name]) <= SHARE_TOLERANCE for name in a)


def _number(value: float) -> str:
    return f"{value:,.10g}"


def mix_text(mix: dict[str, float]) -> str:
    """``checkout 2, browse 1`` (weight 0 left out: it is not sent)."""
    sent = sorted((name, weight) for name, weight in mix.items() if weight > 0)
    return ", ".join(f"{name} {_number(weight)}" for name, weight in sent) or "nothing"


def model_text(config: RunConfiguration) -> str:
    if config.target_rps:
        return f"open, {_number(config.target_rps)} requests/s"
    return "closed (think time)"


def think_time_text(config: RunConfiguration) -> str:
    low, high = config.request_interval_min, config.request_interval_max
    return f"{_number(low)} s" if low == high else f"{_number(low)} to {_number(high)} s"


def users_text(config: RunConfiguration) -> str:
    """``20``, or ``20, then 40`` for a run whose users changed while it ran."""
    if config.users_start == config.users_end:
        return f"{config.users_start:,}"
    return f"{config.users_start:,}, then {config.users_end:,}"


def weights_text(config: RunConfiguration) -> str:
    if same_mix(config.mix_start, config.mix_end):
        return mix_text(config.mix_start)
    return f"{mix_text(config.mix_start)}, then {mix_text(config.mix_end)}"


def _seconds(value: float | None) -> str:
    return "until stopped" if value is None else f"{value:,.1f} s"


# Each aspect of a run's load: its name in the API, its words, how it is written, whether
# it is the same in two runs, and whether a difference rules out a verdict (the load
# differed) or is only shown (how long it ran: rates and percentiles do not depend on it).
Aspect = tuple[str, str, Any, Any, bool]
ASPECTS: tuple[Aspect, ...] = (
    ("users", "users", users_text,
     lambda a, b: (a.users_start, a.users_end) == (b.users_start, b.users_end), True),
    ("users_mean", "mean users",
     lambda c: "n/a" if c.users_mean is None else f"{c.users_mean:,.1f}",
     lambda a, b: a.users_mean is None or b.users_mean is None
     or round(a.users_mean, 1) == round(b.users_mean, 1), False),
    ("weights", "endpoint weights", weights_text,
     lambda a, b: same_mix(a.mix_start, b.mix_start) and same_mix(a.mix_end, b.mix_end), True),
    ("model", "load model", model_text,
     lambda a, b: a.target_rps == b.target_rps, True),
    ("think_time", "think time", think_time_text,
     # The open model paces by its rate: think time is not what the users wait then.
     lambda a, b: (a.model == b.model == "open")
     or (a.request_interval_min, a.request_interval_max)
     == (b.request_interval_min, b.request_interval_max), True),
    ("ramp_up_s", "ramp-up", lambda c: f"{_number(c.ramp_up_s)} s",
     lambda a, b: a.ramp_up_s == b.ramp_up_s, True),
    ("target", "target", lambda c: f"{c.target_name} ({c.base_url})",
     lambda a, b: a.base_url == b.base_url, True),
    ("planned_duration_s", "planned duration", lambda c: _seconds(c.planned_duration_s),
     lambda a, b: a.planned_duration_s == b.planned_duration_s, False),
    ("duration_s", "duration run", lambda c: _seconds(c.duration_s),
     lambda a, b: round(a.duration_s, 1) == round(b.duration_s, 1), False),
)  # fmt: skip
# The aspects named in the plural ("users differ", "the target differs").
PLURAL = frozenset({"users", "weights"})


def differences(configs: list[RunConfiguration]) -> list[dict[str, Any]]:
    """Every aspect in which some run differs from the first (the reference), each run's
    value in words; ``affects_verdict`` says whether that difference rules out a verdict."""
    reference = configs[0]
    found = []
    for name, words, text, same, affects in ASPECTS:
        if all(same(reference, config) for config in configs[1:]):
            continue
        found.append(
            {
                "aspect": name,
                "label": words,
                "affects_verdict": affects,
                "values": [{"session": c.session_id, "text": text(c)} for c in configs],
            }
        )
    return found


def load_differences(reference: RunConfiguration, config: RunConfiguration) -> list[str]:
    """Why ``config``'s load is not ``reference``'s, in words ("users at start differ:
    20 → 40"); empty when it is the same load."""
    return [
        f"{words} {'differ' if name in PLURAL else 'differs'}: {text(reference)} → {text(config)}"
        for name, words, text, same, affects in ASPECTS
        if affects and not same(reference, config)
    ]
