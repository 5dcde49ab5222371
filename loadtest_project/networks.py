"""Lists of IP addresses and networks (``10.0.0.5``, ``10.0.0.0/8``, ``::1``) and membership.

The settings parse a list with it when they load, so that a typo
stops the process naming the variable instead of silently allowing nobody (or everybody).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(variable: str, entries: Iterable[str]) -> tuple[Network, ...]:
    """Each entry as a network (a bare address is a network of one); host bits may be set
    (``10.1.2.3/8`` means ``10.0.0.0/8``), as people write them."""
    networks = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{variable}: {text!r} is not an IP address or network ({exc}); give "
                "comma-separated addresses or CIDR networks, e.g. 127.0.0.1,10.0.0.0/8,::1."
            ) from exc
    return tuple(networks)


def address_in(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` lies in one of ``networks``; an unknown or malformed address never
    does. An IPv4 address mapped into IPv6 (``::ffff:10.0.0.5``, from a dual-stack socket)
    counts as its IPv4 self."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)
