"""Which surface a call to the API came through: the dashboard's pages or a client of the API.

The dashboard's scripts call the same API as everyone (one path for every change, one set of
permission checks) and say so in a request header; the services record that surface beside
who made the change (events, configuration history). Only the values named here are taken:
anything else, or no header, is "api". The header is a label, never a permission: a client
that sends it gains nothing but the word "page" in the record.
"""

from apps.sessions.choices import Via

VIA_HEADER = "X-Loadtest-Via"
# What a caller of the API may say it is; the other surfaces (admin, CLI, schedule, system)
# call the services directly and say so themselves.
CLAIMABLE = frozenset({Via.PAGE, Via.API})


def request_via(request) -> str:
    """The surface of ``request``: "page" when the dashboard's scripts say so, else "api"."""
    headers = getattr(request, "headers", None)
    claimed = (headers.get(VIA_HEADER, "") if headers is not None else "").strip().lower()
    return Via(claimed).value if claimed in CLAIMABLE else Via.API.value


def serializer_via(context: dict) -> str:
    """A serializer's surface: the one its caller named (the dashboard's server-rendered form
    saves through the serializer), else its request's."""
    return context.get("via") or request_via(context.get("request"))
