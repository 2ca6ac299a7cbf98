"""Where the registry may send requests: webhook targets must be public unless an admin allow-lists them.

A webhook URL is checked when it is registered and again at every delivery, on the addresses its host
resolves to then (a name that resolved to a public address yesterday may resolve to 127.0.0.1 today: DNS
rebinding); the delivery then connects to the address that was checked, never resolving twice.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services.registry.errors import RegistryError
from shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

ALLOWED_HOSTS_SETTING = "DRIFTLOOP_REGISTRY_WEBHOOK_ALLOWED_HOSTS"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598; Python's is_private leaves it out
_HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


class OutboundRefused(RegistryError, ValueError):
    """The target is not one the registry may call; the message says why and which setting allows it."""

    status = 422
    code = "invalid"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to now (blocking, the system resolver), in its order, without repeats."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def inward_kind(address: IPAddress) -> str | None:
    """What makes ``address`` an inward target (``"loopback"``, ``"private"``, ...), or None if public.

    >>> inward_kind(ipaddress.ip_address("127.0.0.2")), inward_kind(ipaddress.ip_address("::ffff:10.0.0.1"))
    ('loopback', 'private')
    >>> inward_kind(ipaddress.ip_address("100.64.0.1")), inward_kind(ipaddress.ip_address("93.184.216.34"))
    ('shared (CGNAT)', None)
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
    ):
        if hit:
            return kind
    return None


def _stack_hosts(settings: Settings) -> set[str]:
    """Host names of the services this stack talks to (Kafka, ClickHouse, S3, the registry, its database)."""
    urls = [settings.clickhouse_url, settings.s3_endpoint_url, settings.registry_url]
    database = settings.resolved_registry_database_url
    if "://" in database and not database.startswith("sqlite"):
        urls.append("db://" + database.split("://", 1)[1])
    hosts = {urlsplit(u).hostname or "" for u in urls if u}
    hosts |= {s.strip().rpartition(":")[0].strip("[]") for s in settings.kafka_bootstrap.split(",")}
    hosts.add(socket.gethostname())
    return {h.lower().rstrip(".") for h in hosts if h}


@dataclass(frozen=True)
class OutboundPolicy:
    """Which webhook targets the registry may call; built once at start-up (:meth:`from_settings`)."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    stack_hosts: frozenset[str] = frozenset()
    stack_addresses: frozenset[IPAddress] = frozenset()
    resolver: Resolver = field(default=resolve, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver = resolve) -> OutboundPolicy:
        """The admin's allow-list and the stack's own hosts and their addresses (a bad entry raises)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in settings.registry_webhook_allowed_hosts:
            text = entry.strip().strip("[]").lower().rstrip(".")
            if _is_network(text):
                networks.append(ipaddress.ip_network(text, strict=False))
            elif _HOST_RE.match(text):
                hosts.add(text)
            else:
                raise ValueError(
                    f"{ALLOWED_HOSTS_SETTING} entry {entry!r} is not a host name, address or CIDR"
                )
        stack_hosts = _stack_hosts(settings)
        addresses: set[IPAddress] = set()
        for host in stack_hosts:
            # a stack host that does not resolve here cannot be reached through it either
            with contextlib.suppress(OSError, UnicodeError, ValueError):
                addresses.update(resolver(host, 0))
        return cls(frozenset(hosts), tuple(networks), frozenset(stack_hosts), frozenset(addresses), resolver)

    def _allowed(self, address: IPAddress) -> bool:
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in n for a in candidates for n in self.allowed_networks if a.version == n.version)

    def check(self, url: str) -> list[IPAddress]:
        """The addresses to connect to for ``url``, each checked; :class:`OutboundRefused` if any is inward.

        Raises ``OSError`` when the host does not resolve (a delivery counts it as a failed attempt).
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise OutboundRefused(f"{url} has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = self.resolver(host, port)
            if not addresses:
                raise OSError(f"{host} resolves to no address") from None
        if host in self.allowed_hosts:
            return addresses
        for address in addresses:
            if self._allowed(address):
                continue
            shown = host if host == str(address) else f"{host} ({address})"
            kind = inward_kind(address)
            if kind is not None:
                raise OutboundRefused(self._why(shown, f"a {kind} address"))
            if address in self.stack_addresses:
                raise OutboundRefused(self._why(shown, "an address of this Driftloop stack"))
        if host in self.stack_hosts and not all(self._allowed(a) for a in addresses):
            raise OutboundRefused(self._why(host, "a host of this Driftloop stack"))
        return addresses

    @staticmethod
    def _why(target: str, what: str) -> str:
        return (
            f"webhook target {target} is {what}; the registry only calls public addresses unless an admin "
            f"lists the host, address or network in {ALLOWED_HOSTS_SETTING}"
        )


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def pinned(url: str, address: IPAddress) -> tuple[str, str, str]:
    """``url`` with its host replaced by ``address``, plus the ``Host`` header and TLS name to send.

    Connecting to the checked address (not the name, which could resolve elsewhere a moment later) while
    sending the original ``Host`` and verifying the certificate against the original name.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host_header = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl(), host_header, host
