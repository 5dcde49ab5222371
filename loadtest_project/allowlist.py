"""ALLOWED_TARGET_HOSTS: the hosts and ports load may be sent to.

An entry names a host and which of its ports:
- ``host``: the scheme's default port only (80 for http, 443 for https);
- ``host:5001``: that port, whatever the scheme;
- ``host:*``: any port;
- ``.example.com`` (with any of the port forms above): the domain and its subdomains.
IPv6 addresses go in brackets, ``[::1]:8080``. Hosts match exactly after normalising (lower
case, no trailing dot, IPv6 in its shortest form), never as a string prefix, so
``localhost.evil.example`` is not ``localhost``. Ports matter because a host on the list
usually runs more than the application under test: ``localhost`` should not admit Redis on
6379 or PostgreSQL on 5432.

Plain Python, no Django: the settings parse the list with it when they load, to fail fast on
a malformed entry.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_PORT = "*"
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


@dataclass(frozen=True)
class AllowedHost:
    """One parsed entry of the allow-list."""

    host: str
    subdomains: bool
    port: int | None  # None: the scheme's default port
    any_port: bool

    def admits(self, host: str, port: int, scheme: str) -> bool:
        if self.subdomains:
            host_ok = host == self.host or host.endswith("." + self.host)
        else:
            host_ok = host == self.host
        if not host_ok:
            return False
        if self.any_port:
            return True
        if self.port is None:
            return port == DEFAULT_PORTS.get(scheme)
        return port == self.port


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, IPv6 compressed and without brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return host  # not an address: it matches nothing on the list
    return host


@lru_cache(maxsize=256)
def parse_entry(entry: str) -> AllowedHost:
    """Parse one entry; ValueError with a message a person can act on when malformed."""
    text = entry.strip().lower()
    subdomains = text.startswith(".")
    if subdomains:
        text = text[1:]
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{entry!r}: an IPv6 address needs its closing bracket, [::1]:8080.")
        try:
            host = ipaddress.IPv6Address(address).compressed
        except ValueError as exc:
            raise ValueError(f"{entry!r}: {address!r} is not an IPv6 address.") from exc
        if rest and not rest.startswith(":"):
            raise ValueError(f"{entry!r}: write host:port, as in [::1]:8080.")
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            raise ValueError(f"{entry!r}: put an IPv6 address in brackets, as in [::1]:8080.")
        host, colon, port_text = text.partition(":")
        host = host.rstrip(".")
        if not colon:
            port_text = None
        if not _HOST_NAME.match(host):
            raise ValueError(
                f"{entry!r}: {host!r} is not a host name or IPv4 address "
                "(write internationalised names in their xn-- form)."
            )
    if port_text is None:
        return AllowedHost(host, subdomains, None, False)
    if port_text == ANY_PORT:
        return AllowedHost(host, subdomains, None, True)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535, or *.")
    return AllowedHost(host, subdomains, int(port_text), False)


def parse_allow_list(entries: Iterable[str]) -> list[str]:
    """The entries, checked and stripped (empty ones dropped); ValueError naming a bad one."""
    cleaned = [entry.strip().lower() for entry in entries if entry.strip()]
    for entry in cleaned:
        parse_entry(entry)
    return cleaned


def is_allowed(entries: Iterable[str], host: str | None, port: int, scheme: str) -> bool:
    """Is ``scheme://host:port`` on the list? ``host`` as urlsplit gives it (no brackets)."""
    if not host:
        return False
    host = normalize_host(host)
    return any(parse_entry(entry).admits(host, port, scheme) for entry in entries)


def names_host(entries: Iterable[str], host: str | None) -> bool:
    """Does any entry name ``host``, whatever its port? Load may go to that host, so a
    request sent there for another reason (a webhook) must pass the whole check too."""
    if not host:
        return False
    host = normalize_host(host)
    return any(_names(entry, host) for entry in entries)


def address_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as a number stands for, in any spelling the resolver
    accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``[::ffff:127.0.0.1]``); None for a name."""
    host = normalize_host(host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_this_machine(host: str) -> bool:
    """Loopback and "any" addresses in every spelling, localhost, this machine's names, and
    any name that resolves (the hosts file included: ``localhost.localdomain``, a container's
    aliases) to one of those addresses: all reach the services of the machine they are
    used on."""
    host = normalize_host(host)
    address = address_of(host)
    if address is not None:
        return address.is_loopback or address.is_unspecified
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    if host == "localhost" or host.endswith(".localhost") or host in names:
        return True
    own = _own_addresses()
    return any(found.is_loopback or found.is_unspecified or found in own for found in resolve(host))


def resolve(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a name stands for, as a connection to it would find them (the hosts
    file, then DNS), IPv4-mapped ones as IPv4; empty when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for *_, sockaddr in infos:
        address = address_of(str(sockaddr[0]).partition("%")[0])
        if address is not None:
            found.add(address)
    return found


def _own_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses this machine's own names resolve to (a container's address on its
    network, which is not loopback)."""
    return resolve(socket.gethostname()) | resolve(socket.getfqdn())


def same_host(first: str, second: str) -> bool:
    """Do two host names reach the same machine? Compared as written, then after resolving
    both: a name only the hosts file knows is another spelling of the address it maps to."""
    first, second = normalize_host(first), normalize_host(second)
    if first == second or (is_this_machine(first) and is_this_machine(second)):
        return True
    first_address, second_address = address_of(first), address_of(second)
    if first_address is not None and first_address == second_address:
        return True
    first_found = {first_address} if first_address is not None else resolve(first)
    second_found = {second_address} if second_address is not None else resolve(second)
    return bool(first_found & second_found)


def _names(entry: str, host: str) -> bool:
    parsed = parse_entry(entry)
    if parsed.subdomains:
        return host == parsed.host or host.endswith("." + parsed.host)
    return host == parsed.host
