"""The comparison's figures and deltas as table cells for people: units, signs, and the
direction in words and arrows as well as colour (a colour alone tells nothing to a screen
reader or to someone who does not see red and green apart)."""

from __future__ import annotations

from typing import Any

from apps.sessions.results import units
from apps.sessions.results.comparison import BETTER, SAME, WORSE

# The comparison table's columns: figure, heading.
COLUMNS = [
    ("rps", "Requests/s"),
    ("error_rate", "Error rate"),
    ("p50_ms", "p50"),
    ("p95_ms", "p95"),
    ("p99_ms", "p99"),
]
_MARKS = {BETTER: ("▲", "better", "delta-better"), WORSE: ("▼", "worse", "delta-worse"),
          SAME: ("=", "same", "delta-same")}  # fmt: skip


def value_text(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    if metric == "error_rate":
        return f"{value * 100:.2f} %"
    if metric == "rps":
        return f"{_rate(value)}/s"
    return f"{value:,.1f} ms"


def _rate(value: float, sign: str = "") -> str:
    """Requests/s with the decimals a small rate needs, trailing zeros kept for the table's
    columns (20.0/s)."""
    return f"{value:{sign},.{units.rate_decimals(value)}f}"


def change_text(metric: str, change: dict[str, Any]) -> str:
    """``+12.0 ms (+25.0 %)``; an error rate's absolute change in percentage points."""
    absolute = change["absolute"]
    if metric == "error_rate":
        text = f"{absolute * 100:+.2f} pp"
    elif metric == "rps":
        text = f"{_rate(absolute, '+')}/s"
    else:
        text = f"{absolute:+,.1f} ms"
    relative = change["relative"]
    return text + (" (from 0)" if relative is None else f" ({relative * 100:+.1f} %)")


def cells(figures: dict[str, Any] | None, deltas: dict[str, Any] | None,
          regressed: list[str], *, same_load: bool = True) -> list[dict[str, str]]:  # fmt: skip
    """One table row's cells: each figure's value, and its change when there is one. A run
    whose load differed from the reference's shows its changes without "better" or "worse":
    fewer requests/s at half the users is no verdict on the target."""
    row = []
    for metric, _ in COLUMNS:
        cell = {"metric": metric, "value": value_text(metric, figures[metric] if figures else None),
                "change": "", "mark": "", "word": "", "css": "", "regressed": ""}  # fmt: skip
        change = (deltas or {}).get(metric)
        if change and change["direction"] is not None:
            mark, word, css = _MARKS[change["direction"]] if same_load else ("Δ", "", "")
            cell.update(change=change_text(metric, change), mark=mark, word=word, css=css)
            if metric in regressed:
                cell["regressed"] = "regression"
        row.append(cell)
    return row


def comparison_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparison's rows, scope by scope, one per session."""
    names = {session["id"]: session for session in result["sessions"]}
    rows = []
    for scope in result["scopes"]:
        for index, row in enumerate(scope["rows"]):
            figures = row["figures"]
            rows.append(
                {
                    "scope": scope["endpoint"],
                    "first_of_scope": index == 0,
                    "span": len(scope["rows"]),
                    "session": names[row["session"]],
                    "requests": figures["requests"] if figures else None,
                    "note": row["note"],
                    "cells": cells(
                        figures,
                        row["deltas"],
                        row["regressed"],
                        same_load=names[row["session"]]["same_load"],
                    ),
                }
            )
    return rows


def baseline_rows(against: dict[str, Any]) -> list[dict[str, Any]]:
    """A session's deltas against its baseline, one row per scope."""
    return [
        {
            "scope": scope["endpoint"],
            "requests": scope["figures"]["requests"] if scope["figures"] else None,
            "note": scope["note"],
            "cells": cells(
                scope["figures"],
                scope["deltas"],
                scope["regressed"],
                same_load=against["same_load"],
            ),
        }
        for scope in against["endpoints"]
    ]
