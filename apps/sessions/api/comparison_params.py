"""The comparison's query parameters, checked before any row is read: a bad one is a 400
naming the parameter and saying what to send (the API and the /compare/ page share them)."""

from __future__ import annotations

import math

from rest_framework import serializers

from apps.sessions.models import LoadTestSession
from apps.sessions.validation import REGRESSION_MARGIN_PCT_MAX

SESSIONS_MIN, SESSIONS_MAX = 2, 10
QUANTILES_MAX = 20
PARAM_CHARS_MAX = 200
_ID_MAX = 2**63 - 1


def _refuse(name: str, message: str) -> serializers.ValidationError:
    return serializers.ValidationError({name: [message]})


def _items(raw: str | None, name: str, example: str) -> list[str]:
    if raw is None or not raw.strip():
        raise _refuse(name, f"Give a comma-separated list, as in ?{name}={example}.")
    if len(raw) > PARAM_CHARS_MAX:
        raise _refuse(name, f"At most {PARAM_CHARS_MAX} characters.")
    return [item.strip() for item in raw.split(",")]


def parse_session_ids(raw: str | None) -> list[int]:
    """``ids=1,2,3``: 2 to 10 distinct session ids, in the order given."""
    ids: list[int] = []
    for item in _items(raw, "ids", "1,2"):
        if not (item.isascii() and item.isdigit() and 0 < int(item) <= _ID_MAX):
            shown = item if len(item) <= 20 else item[:19] + "…"
            raise _refuse("ids", f"'{shown}' is not a session id (a whole number from 1).")
        if int(item) in ids:
            raise _refuse("ids", f"Session {int(item)} is listed twice.")
        ids.append(int(item))
    if not SESSIONS_MIN <= len(ids) <= SESSIONS_MAX:
        raise _refuse("ids", f"Give {SESSIONS_MIN} to {SESSIONS_MAX} session ids, not {len(ids)}.")
    return ids


def parse_sessions(raw: str | None) -> list[LoadTestSession]:
    """The sessions named by ``ids``, in that order; unknown ids are a 400 naming them."""
    ids = parse_session_ids(raw)
    found = LoadTestSession.objects.select_related("target").in_bulk(ids)
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise _refuse("ids", f"No session {', '.join(missing)}.")
    return [found[pk] for pk in ids]


def parse_margin(raw: str | None) -> float | None:
    """``margin_pct``: a percentage from 0 to 1000; absent, the target's own is used."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw) if len(raw) <= 30 else math.nan
    except ValueError:
        value = math.nan
    if not 0 <= value <= REGRESSION_MARGIN_PCT_MAX:  # NaN fails this too
        raise _refuse("margin_pct", f"Give a percentage from 0 to {REGRESSION_MARGIN_PCT_MAX:g}.")
    return value


def parse_quantiles(raw: str | None) -> list[float]:
    """``q=0.999,0.9999``: up to 20 quantiles from 0 to 1; none when absent."""
    if raw is None or raw == "":
        return []
    quantiles: list[float] = []
    items = _items(raw, "q", "0.999")
    if len(items) > QUANTILES_MAX:
        raise _refuse("q", f"At most {QUANTILES_MAX} quantiles.")
    for item in items:
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:
            shown = item if len(item) <= 20 else item[:19] + "…"
            raise _refuse("q", f"'{shown}' is not a quantile: give a number from 0 to 1 (0.99).")
        if value not in quantiles:
            quantiles.append(value)
    return quantiles
