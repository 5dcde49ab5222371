"""Flower's configuration file: the Procfile and compose start Flower with ``--conf`` on it.

Flower can revoke and terminate tasks, so it never runs open. Its credentials come from
FLOWER_BASIC_AUTH (``user:password``, read by Flower itself from the environment; the run
command generates them); without them, or with an empty password, Flower refuses to start.
Flower applies the environment and its command line before reading this file, so the check
sees what Flower will use.

Flower serves ``/metrics`` (worker names, task names and counts) without asking for its
credentials, and has no option to change that: this file, which Flower runs before it serves
anything, puts that page behind the same basic auth as the others. ``/healthcheck`` stays
open: it says "OK" and nothing else, for probes that hold no credentials.
"""

import tornado.web
from flower.views.monitor import Metrics
from tornado.options import options


def _is_user_and_password(pair: str) -> bool:
    user, _, password = pair.partition(":")
    return bool(user and password)


if not options.basic_auth or not all(_is_user_and_password(pair) for pair in options.basic_auth):
    raise SystemExit(
        "Flower refuses to start without authentication: set FLOWER_BASIC_AUTH=user:password "
        "(python3 scripts/dev.py run generates one and shows it)."
    )


# Flower's basic auth raises 401 from get_current_user when the credentials are missing or
# wrong, which is what ``authenticated`` calls first.
Metrics.get = tornado.web.authenticated(Metrics.get)  # type: ignore[method-assign]
