"""Template helpers of the dashboard."""

from django import template

register = template.Library()


@register.filter
def get(mapping, key):
    """``errors|get:"field"``: a dict's value by a key held in a variable or with a dot."""
    return mapping.get(key) if hasattr(mapping, "get") else None
