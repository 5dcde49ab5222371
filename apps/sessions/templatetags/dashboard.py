"""Template helpers of the dashboard."""

from django import template

from apps.sessions.access.config_history import readable
from apps.sessions.access.masking import masked_endpoint_url

register = template.Library()


@register.filter
def get(mapping, key):
    """``errors|get:"field"``: a dict's value by a key held in a variable or with a dot."""
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def number(value, digits=1):
    """A figure for people: thousands separated, ``digits`` decimals for a fraction, "-" for
    none (no request yet, or nothing measured)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    try:
        return f"{float(value):,.{int(digits)}f}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def percent(value, digits=2):
    """A rate (0.0123) as a percentage ("1.23 %"); "-" for none."""
    if value is None or value == "":
        return "-"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def seconds(value):
    """A duration in seconds as "1 h 02 min 05 s", "3 min 20 s" or "4.2 s"."""
    if value is None:
        return "-"
    total = float(value)
    if total < 60:
        return f"{total:.1f} s"
    whole = round(total)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


@register.filter
def history_value(value):
    """A configuration history value as text people read ("checkout 2, browse 1")."""
    return readable(value)


@register.filter
def shown_url(endpoint) -> str:
    """An endpoint's URL with the secrets of its request (``?api_key=``) masked: the pages
    only show it, for every role (``access.masking``)."""
    return masked_endpoint_url(endpoint)
