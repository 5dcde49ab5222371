"""Pass/fail thresholds on a session's results: their small syntax, and how they are judged.

A threshold is one line, ``[ENDPOINT:] METRIC OPERATOR NUMBER [abort]``, for example
``p95_ms < 500``, ``checkout: error_rate <= 0.01 abort`` or ``rps > 100``. Without an endpoint
it judges the whole session; ``abort`` lets the monitor stop the session as soon as it fails
(once there is enough data to say so). The same parser serves the API, the admin, the
dashboard and the CLI, so every edge refuses the same text with the same message.

Pure code: no database, no Redis. Judged on a run's figures (``figures.RunFigures``); the
monitor stores what ``judge`` says.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from apps.sessions.results.figures import RunFigures

METRICS: dict[str, str] = {
    "p50_ms": "50th percentile latency, ms",
    "p90_ms": "90th percentile latency, ms",
    "p95_ms": "95th percentile latency, ms",
    "p99_ms": "99th percentile latency, ms",
    "mean_ms": "mean latency, ms",
    "max_ms": "highest latency, ms",
    "error_rate": "failures / requests, 0 to 1",
    "rps": "requests per second since the load started",
    "requests": "requests completed",
    "failures": "failed requests",
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Counters only grow while a session runs: an upper bound once passed has failed for good,
# a lower bound cannot fail before the end. ``rps`` climbs during a ramp-up, so its lower
# bound is only judged at the end too.
GROWING_METRICS = frozenset({"requests", "failures"})
LOWER_BOUND_JUDGED_AT_END = frozenset({"requests", "failures", "rps"})

THRESHOLDS_MAX = 50
EXPRESSION_CHARS_MAX = 200
VALUE_MAX = 1e12

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+")
# The scope is everything before the last ": " that precedes a metric: endpoint names may
# hold colons themselves.
_EXPRESSION = re.compile(
    r"^(?:(?P<scope>.+?)\s*:\s*)?"
    r"(?P<metric>[A-Za-z0-9_]+)\s*(?P<operator><=|>=|<|>|==|=|!=)\s*(?P<value>\S+?)"
    r"(?:\s+(?P<flag>\S+))?$"
)


class ThresholdError(ValueError):
    """The text is not a threshold; the message says what is wrong, for a person."""


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold. ``expression`` is its normalised text (single spaces)."""

    metric: str
    operator: str
    value: float
    scope: str | None = None
    abort: bool = False

    @property
    def expression(self) -> str:
        # Up to 15 significant digits: 1234567 stays 1234567 (":g" would show 1.23457e+06).
        text = f"{self.metric} {self.operator} {self.value:.15g}"
        if self.scope is not None:
            text = f"{self.scope}: {text}"
        return f"{text} abort" if self.abort else text

    def holds(self, observed: float) -> bool:
        return OPERATORS[self.operator](observed, self.value)


def _shorten(text: str, chars: int = 40) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def parse_threshold(text: object) -> Threshold:
    """Read one threshold, or raise ``ThresholdError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ThresholdError("Must be a text such as 'p95_ms < 500'.")
    if len(text) > EXPRESSION_CHARS_MAX:
        raise ThresholdError(f"At most {EXPRESSION_CHARS_MAX} characters.")
    if any(not char.isprintable() for char in text):
        raise ThresholdError("Must be one line of printable characters.")
    stripped = text.strip()
    if not stripped:
        raise ThresholdError("Empty; write one such as 'p95_ms < 500'.")
    match = _EXPRESSION.match(stripped)
    if match is None:
        raise ThresholdError(
            f"'{_shorten(stripped)}' is not [ENDPOINT:] METRIC OPERATOR NUMBER [abort], "
            "e.g. 'p95_ms < 500' or 'checkout: error_rate < 0.01 abort'."
        )
    scope, metric, op, value_text, flag = match.group("scope", "metric", "operator", "value",
                                                      "flag")  # fmt: skip
    if metric not in METRICS:
        raise ThresholdError(f"Unknown metric '{_shorten(metric)}'; one of: {', '.join(METRICS)}.")
    if op not in OPERATORS:
        raise ThresholdError(f"Unknown operator '{op}'; one of: <, <=, >, >=.")
    if value_text.startswith("-"):
        raise ThresholdError(f"'{_shorten(value_text)}': the number must not be negative.")
    if not _NUMBER.fullmatch(value_text):
        raise ThresholdError(
            f"'{_shorten(value_text)}' is not a number (digits, a decimal point, an exponent)."
        )
    value = float(value_text)
    if not math.isfinite(value) or value > VALUE_MAX:
        raise ThresholdError(f"The number must be at most {VALUE_MAX:g}.")
    if metric == "error_rate" and value > 1:
        raise ThresholdError("error_rate is a fraction from 0 to 1 (0.01 is 1%).")
    if flag is not None and flag != "abort":
        raise ThresholdError(f"Unexpected '{_shorten(flag)}' after the number; only 'abort'.")
    if scope is not None:
        scope = scope.strip()
        if not scope:
            raise ThresholdError("The endpoint name before ':' is empty.")
    return Threshold(metric=metric, operator=op, value=value, scope=scope, abort=flag == "abort")


def thresholds_problems(value: object, endpoint_names: Iterable[str] | None = None) -> list[str]:
    """What is wrong with a session's ``thresholds`` (a list of texts), given the names of
    its target's endpoints (None: not checked). Each message names the threshold."""
    if value is None:
        return []
    if not isinstance(value, list):
        return ["Must be a list of texts such as ['p95_ms < 500', 'error_rate < 0.01']."]
    if len(value) > THRESHOLDS_MAX:
        return [f"At most {THRESHOLDS_MAX} thresholds."]
    known = None if endpoint_names is None else set(endpoint_names)
    problems = []
    for number, text in enumerate(value, start=1):
        try:
            threshold = parse_threshold(text)
        except ThresholdError as exc:
            problems.append(f"Threshold {number}: {exc}")
            continue
        if known is not None and threshold.scope is not None and threshold.scope not in known:
            names = ", ".join(sorted(known)) or "none"
            problems.append(
                f"Threshold {number}: unknown endpoint '{_shorten(threshold.scope)}' (this "
                f"target has: {_shorten(names, 300)})."
            )
    return problems


def parse_thresholds(texts: Iterable[str]) -> list[Threshold]:
    """Thresholds already validated (a stored session's)."""
    return [parse_threshold(text) for text in texts]


@dataclass(frozen=True)
class Verdict:
    """A threshold's judgement: ``passed`` None while it cannot be judged yet (live only)."""

    threshold: Threshold
    observed: float | None
    passed: bool | None
    note: str = ""

    def as_json(self, evaluated_at: str, aborted: bool = False, final: bool = False) -> dict:
        return {
            "expression": self.threshold.expression,
            "scope": self.threshold.scope,
            "metric": self.threshold.metric,
            "observed": None if self.observed is None else round(self.observed, 6),
            "passed": self.passed,
            "note": self.note,
            "evaluated_at": evaluated_at,
            "aborted": aborted,
            "final": final,
        }


def judge(
    threshold: Threshold,
    figures: Mapping[str | None, RunFigures],
    *,
    final: bool,
    min_requests: int = 0,
) -> Verdict:
    """Judge ``threshold`` on ``figures`` (by scope: None is the whole session).

    At the end (``final``) every threshold is judged; one with nothing to judge on (no
    requests, so no latency or error rate) fails, so that a run that measured nothing never
    passes. Live, a threshold is judged only once its scope has ``min_requests``, and a lower
    bound on a growing figure (requests, failures, rps) only at the end; an upper bound on a
    counter fails as soon as it is passed, since it can only grow.
    """
    scoped = figures.get(threshold.scope)
    if scoped is None:
        scoped = RunFigures(requests=0, failures=0, duration_s=0.0)
    observed = scoped.observe(threshold.metric)
    lower_bound = threshold.operator in (">", ">=")
    if final:
        if observed is None:
            return Verdict(threshold, None, False, "no requests completed to judge it on")
        return Verdict(threshold, observed, threshold.holds(observed))
    if observed is None:
        return Verdict(threshold, None, None, "no requests yet")
    if lower_bound and threshold.metric in LOWER_BOUND_JUDGED_AT_END:
        return Verdict(threshold, observed, None, "judged at the end")
    if threshold.metric in GROWING_METRICS:
        return Verdict(threshold, observed, threshold.holds(observed))
    if scoped.requests < min_requests:
        return Verdict(threshold, observed, None, f"judged from {min_requests} requests")
    return Verdict(threshold, observed, threshold.holds(observed))
