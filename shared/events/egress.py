"""Where the desk may send a request on a subscriber's behalf: the one address and port policy of webhooks.

A webhook URL is chosen by a partner or a company, so every request to it is a request the desk makes
inside its own network unless the target is checked (server-side request forgery). The policy lives here,
once, and is applied twice: when a subscription is created (`check_url`, an early and readable refusal)
and at every delivery (`pin`), because the name may resolve elsewhere by then (DNS rebinding). At delivery
the host is resolved once, *every* address is checked, and the request is sent to the checked address
itself (the original name goes in the Host header and is used for TLS SNI and certificate verification),
so no second resolution can swap the target between the check and the connection.

Addresses are judged on what they reach, not on how they are written: an IPv6 address that embeds an IPv4
address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo, ISATAP) is refused when the IPv4 address is.

In production only public (globally routable) addresses on port 443 are accepted, unless an officer allowed
another port for that host. In local and test mode loopback, private addresses, http and any port stay
allowed (developers and tests run receivers on their own machine); cloud metadata, link-local, multicast
and unspecified addresses are refused in every mode. This module does no database work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Reason = Literal["metadata", "link_local", "multicast", "unspecified", "loopback", "private"]
Resolver = Callable[[str, int], Awaitable[list[str]]]

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
METADATA_IPS = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

REASONS: dict[Reason, tuple[str, str]] = {
    "metadata": ("un servizio di metadati cloud", "a cloud metadata service"),
    "link_local": ("un indirizzo link-local", "a link-local address"),
    "multicast": ("un indirizzo multicast", "a multicast address"),
    "unspecified": ("un indirizzo non specificato", "an unspecified address"),
    "loopback": ("un indirizzo di loopback", "a loopback address"),
    "private": ("un indirizzo privato o riservato", "a private or reserved address"),
}

HTTPS_PORT = 443
HTTP_PORT = 80

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (RFC 4291 §2.5.5.1)
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, never a public destination
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)  # interface identifier ...:0:5efe:a.b.c.d / 200:5efe (RFC 5214)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries by a known transition mechanism (none for plain IPv6)."""
    value = int(ip)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE or ip in _NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if ip in _NAT64_LOCAL_USE:
        # RFC 6052 §2.2 for a /48 prefix: bits 48-63 and 72-87 hold the address (bits 64-71 are zero)
        found.append(ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | ((value >> 40) & 0xFFFF)))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client)
    if (value >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return found


def _own_refusal(ip: IPAddress, production: bool) -> Reason | None:
    """The checks every address gets, on the address as written (embeddings are looked at by the caller)."""
    if ip in METADATA_IPS:
        return "metadata"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback" if production else None
    if production and isinstance(ip, ipaddress.IPv4Address) and (not ip.is_global or ip.is_private):
        return "private"  # RFC 1918, CGNAT 100.64/10, benchmarking 198.18/15, documentation, 240/4, ...
    return None


def address_refusal(ip: IPAddress, *, production: bool) -> Reason | None:
    """Why a request may not go to this address (a key of REASONS), or None when it may.

    An IPv6 address that embeds IPv4 addresses is refused when any of them is. In production an IPv6
    address must also be global unicast (2000::/3, as the IANA hands it out: Python's `is_global` passes
    unassigned space too) and not special-purpose (ULA fc00::/7 and site-local fec0::/10 lie outside it;
    Teredo 2001::/32, documentation 2001:db8::/32 and the other 2001::/23 blocks are `is_private`), or be a
    NAT64 well-known address (64:ff9b::/96) whose embedded IPv4 address is public.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _own_refusal(ip, production)
    if ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    if not (ip.is_unspecified or ip.is_loopback):  # :: and ::1 lie in ::/96 but embed nothing
        for v4 in embedded_ipv4(ip):
            reason = _own_refusal(v4, production)
            if reason is not None:
                return reason
    reason = _own_refusal(ip, production)
    if reason is not None or not production or ip in _NAT64_WELL_KNOWN:
        return reason
    if ip not in _GLOBAL_UNICAST_V6 or ip.is_private or ip.is_site_local:
        return "private"
    return None


# ---------------------------------------------------------------- URLs and ports


class EgressRefused(Exception):
    """A URL the desk will not call. `code` is stable (it is what a subscriber sees in the delivery log);
    the messages say why, in Italian and English, for the refusal at subscription time."""

    def __init__(self, code: str, message_it: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_it = message_it
        self.message_en = message_en


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str  # lower case, no trailing dot, no brackets
    port: int  # the explicit port, or the scheme's default
    parts: SplitResult


def parse_url(url: str, *, production: bool) -> Endpoint:
    """The scheme, host and port of a webhook URL, refused when it is malformed or carries what a webhook URL
    may not (credentials, a fragment, a scheme other than http(s), http in production)."""
    try:
        parts = urlsplit(url)
        explicit = parts.port
    except ValueError:
        raise EgressRefused("url_invalid", "L'URL non è valido.", "The URL is not valid.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EgressRefused(
            "url_invalid",
            "L'URL deve usare https (o http fuori produzione).",
            "The URL must use https (or http outside production).",
        )
    if production and scheme != "https":
        raise EgressRefused(
            "url_invalid", "In produzione l'URL deve usare https.", "In production the URL must use https."
        )
    if "@" in parts.netloc:
        raise EgressRefused(
            "url_invalid",
            "L'URL non può contenere credenziali (utente:password@).",
            "The URL may not contain credentials (user:password@).",
        )
    if parts.fragment or "#" in url:
        raise EgressRefused(
            "url_invalid", "L'URL non può contenere un frammento (#...).", "The URL may not contain a fragment (#...)."
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise EgressRefused("url_invalid", "L'URL non indica un host.", "The URL has no host.")
    literal = _literal(host)
    if literal is not None:
        host = str(literal)  # one spelling per address, as the officers' port allowances store it
    port = explicit if explicit is not None else (HTTPS_PORT if scheme == "https" else HTTP_PORT)
    return Endpoint(scheme, host, port, parts)


def check_port(endpoint: Endpoint, *, production: bool, allowed_ports: Collection[int] = ()) -> None:
    """Production: 443 only, or a port an officer allowed for this host (`allowed_ports`). Elsewhere: any."""
    if not production or endpoint.port == HTTPS_PORT or endpoint.port in allowed_ports:
        return
    raise EgressRefused(
        "port_not_allowed",
        f"La porta {endpoint.port} non è consentita: solo 443, salvo autorizzazione di un funzionario.",
        f"Port {endpoint.port} is not allowed: only 443, unless an officer allows it.",
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host resolves to (the event loop's getaddrinfo, in its thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def checked_addresses(endpoint: Endpoint, *, production: bool, resolver: Resolver) -> list[IPAddress]:
    """The host's addresses, each one checked; refused when any one is not acceptable (a name that resolves
    to one public and one private address could be steered to the private one)."""
    if endpoint.host in METADATA_HOSTS:
        it, en = REASONS["metadata"]
        raise EgressRefused(
            "address_forbidden", f"L'host {endpoint.host} è {it}.", f"The host {endpoint.host} is {en}."
        )
    literal = _literal(endpoint.host)
    if literal is not None:
        raw = [str(literal)]
    else:
        try:
            raw = await resolver(endpoint.host, endpoint.port)
        except (OSError, UnicodeError):
            raw = []
        if not raw:
            raise EgressRefused(
                "dns_failed", f"L'host {endpoint.host} non si risolve.", f"The host {endpoint.host} does not resolve."
            )
    addresses: list[IPAddress] = []
    for text_ in dict.fromkeys(raw):
        ip = ipaddress.ip_address(text_.split("%", 1)[0])
        reason = address_refusal(ip, production=production)
        if reason is not None:
            it, en = REASONS[reason]
            raise EgressRefused(
                "address_forbidden",
                f"L'host {endpoint.host} si risolve in {ip}, {it}: non consentito.",
                f"The host {endpoint.host} resolves to {ip}, {en}: not allowed.",
            )
        addresses.append(ip)
    return addresses


async def check_url(
    url: str, *, production: bool, allowed_ports: Collection[int] = (), resolver: Resolver = system_resolver
) -> Endpoint:
    """The whole policy on a URL (form, port, every resolved address); raises EgressRefused."""
    endpoint = parse_url(url, production=production)
    check_port(endpoint, production=production, allowed_ports=allowed_ports)
    await checked_addresses(endpoint, production=production, resolver=resolver)
    return endpoint


# ---------------------------------------------------------------- a request pinned to a checked address


@dataclass(frozen=True)
class PinnedTarget:
    """Where to connect (`url`, whose host is the checked address) and how to present the original name."""

    url: str
    # Host (and Connection: close, so a client shared between names never reuses a connection made for another;
    # the delivery worker drops it where its client is kept for this one name and address)
    headers: dict[str, str]
    extensions: dict[str, str]  # sni_hostname for https: SNI and certificate verification use the name
    address: IPAddress


async def pin(
    url: str, *, production: bool, allowed_ports: Collection[int] = (), resolver: Resolver = system_resolver
) -> PinnedTarget:
    """Check the URL now and aim the request at the first checked address; raises EgressRefused."""
    endpoint = parse_url(url, production=production)
    check_port(endpoint, production=production, allowed_ports=allowed_ports)
    address = (await checked_addresses(endpoint, production=production, resolver=resolver))[0]
    parts = endpoint.parts
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host_header = (
        endpoint.host
        if _literal(endpoint.host) is None
        else (f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host)
    )
    if parts.port is not None:
        host_header = f"{host_header}:{parts.port}"
    extensions = (
        {"sni_hostname": endpoint.host} if endpoint.scheme == "https" and _literal(endpoint.host) is None else {}
    )
    return PinnedTarget(
        urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        {"host": host_header, "connection": "close"},
        extensions,
        address,
    )
