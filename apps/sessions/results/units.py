"""A run's figures written for people, each with its unit: one wording for every text a
person reads outside the pages (a failed threshold's JUnit message, the CLI's tables and
verdicts, webhooks' messages, the comparison's reasons).

The numbers themselves come from ``figures.RunFigures`` (rounded once there); this module
only writes them. A bare ``observed 9.823`` leaves the reader guessing whether that is
milliseconds, a fraction or a rate, so no figure leaves here without its unit, and a
figure's name (``p50_ms``, ``rps``) is replaced by the words a person uses.
"""

from __future__ import annotations

import math

from apps.sessions.results.figures import ERROR_RATE_DIGITS, MS_DIGITS, RATE_DIGITS

# What each figure is called in words (the API's machine names stay as they are).
LABELS: dict[str, str] = {
    "rps": "requests/s",
    "error_rate": "error rate",
    "requests": "requests",
    "failures": "failures",
    "min_ms": "min latency",
    "mean_ms": "mean latency",
    "max_ms": "max latency",
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p999_ms": "p99.9",
}
COUNTS = frozenset({"requests", "failures"})


def label(metric: str) -> str:
    """``p50_ms`` -> "p50", ``rps`` -> "requests/s"; an unknown name is shown as it is."""
    return LABELS.get(metric, metric)


def _trimmed(value: float, decimals: int) -> str:
    """``value`` with at most ``decimals`` decimals, trailing zeros dropped (2.10 -> 2.1)."""
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(fraction: float, decimals: int = 2) -> str:
    """A fraction as a percentage: 0.021 -> "2.1 %"; a tiny non-zero one keeps two
    significant digits (0.0000004 -> "0.00004 %") rather than reading as 0."""
    value = fraction * 100
    if value and abs(value) < 10**-decimals:
        digits = min(12, 1 - math.floor(math.log10(abs(value))))
        return f"{_trimmed(value, digits)} %"
    return f"{_trimmed(value, decimals)} %"


def rate_decimals(value: float) -> int:
    """The decimals a rate needs to say something: 0.25/s, not 0.2/s or 0.0/s."""
    return 1 if abs(value) >= 10 or value == 0 else 2 if abs(value) >= 0.1 else 3


def rate(value: float, sign: str = "") -> str:
    """Requests per second with the decimals a small rate needs (0.25, not 0.2 or 0.0),
    trailing zeros dropped (3.5, not 3.50)."""
    text = f"{value:{sign},.{rate_decimals(value)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def milliseconds(value: float, sign: str = "") -> str:
    """A latency in a sentence: two decimals below 10 ms (9.82 ms), one above (123.4 ms)."""
    decimals = 2 if abs(value) < 10 else 1
    return f"{value:{sign},.{decimals}f} ms"


def figure(metric: str, value: float | None) -> str:
    """One figure with its unit, to the digits ``RunFigures`` keeps, so that a verdict shows
    the very number it was judged on (a threshold ``p95_ms < 9.82`` that failed must not
    read "observed 9.82 ms"): "9.823 ms", "2.1 %", "42.5 requests/s", "1,234 requests"."""
    if value is None:
        return "n/a"
    if metric == "error_rate":
        return percent(value, ERROR_RATE_DIGITS - 2)
    if metric == "rps":
        return f"{_trimmed(value, RATE_DIGITS)} requests/s"
    if metric in COUNTS:
        return f"{round(value):,} {metric}"
    if metric.endswith("_ms"):
        return f"{_trimmed(value, MS_DIGITS)} ms"
    return f"{value:,.6g}"


def _short(metric: str, value: float | None) -> str:
    """A figure in a sentence about a change: as many digits as a person compares."""
    if value is not None and metric.endswith("_ms"):
        return milliseconds(value)
    if value is not None and metric == "rps":
        return f"{rate(value)} requests/s"
    return figure(metric, value)


def _relative(relative: float) -> str:
    size = abs(relative) * 100
    return f"{size:.0f} %" if size >= 10 else f"{_trimmed(size, 1)} %"


def change(metric: str, before: float | None, after: float | None) -> str:
    """How a figure moved, in words with units: "p50 up 34 % (+42.1 ms)", "requests/s down
    12 % (-3.4 /s)", "error rate up 2.1 points (0.4 % → 2.5 %)"."""
    name = label(metric)
    if before is None or after is None:
        return f"{name} {_short(metric, before)} → {_short(metric, after)}"
    difference = after - before
    if difference == 0:
        return f"{name} unchanged ({_short(metric, after)})"
    direction = "up" if difference > 0 else "down"
    if metric == "error_rate":
        points = _trimmed(abs(difference) * 100, 2)
        return f"{name} {direction} {points} points ({percent(before)} → {percent(after)})"
    if metric == "rps":
        amount = f"{rate(difference, '+')} /s"
    elif metric in COUNTS:
        amount = f"{round(difference):+,}"
    else:
        amount = milliseconds(difference, "+")
    if before == 0:
        return f"{name} {direction} from 0 ({amount}, now {_short(metric, after)})"
    return f"{name} {direction} {_relative(difference / before)} ({amount})"
