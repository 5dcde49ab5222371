"""The address a request came from, the one answer that rate limits, the login lockout and
the audit log all use.

``X-Forwarded-For`` is written by whoever sends the request, so it counts only as far as
proxies we run wrote it: each proxy appends the address it received the request from, so
behind ``NUM_PROXIES`` proxies the client is the ``NUM_PROXIES``-th entry from the right.
Anything to the left of that came from the client and may be made up. With ``NUM_PROXIES=0``
(the default: clients connect directly) the header is ignored and the TCP peer is the client.
The web server must not rewrite the peer address itself (the Procfile runs uvicorn with
``--no-proxy-headers``), or a forged header would arrive here already trusted.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(request) -> str | None:
    """The client's IP address, or None when the server gave none.

    ``request`` is a Django ``HttpRequest`` or anything with its ``META`` (DRF's ``Request``).
    A forwarded entry that is not an IP address (a misconfigured proxy) is not trusted: the
    peer address stands instead.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    trusted_proxies = int(getattr(settings, "NUM_PROXIES", 0))
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if trusted_proxies <= 0 or not forwarded.strip():
        return peer
    hops = [hop.strip() for hop in forwarded.split(",")]
    # Fewer hops than proxies: the request skipped a proxy; the leftmost is all there is.
    candidate = hops[-trusted_proxies] if len(hops) >= trusted_proxies else hops[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer
