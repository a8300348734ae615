"""The client's own address behind the gateway (what per-address rate limits count)."""

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

__all__ = ["client_ip"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _trusted_networks(spec: str) -> tuple[bool, tuple[_Network, ...]]:
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if "*" in parts:
        return True, ()
    networks = []
    for part in parts:
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            continue  # a hostname or socket path: uvicorn's business, not ours
    return False, tuple(networks)


def _ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(connection: HTTPConnection, *, forwarded_allow_ips: str) -> str:
    """The client's address: the gateway's ``X-Real-IP``/first ``X-Forwarded-For`` hop.

    Those headers are believed only from a trusted peer (``forwarded_allow_ips``, the
    platform's ``STOREFRONT_FORWARDED_ALLOW_IPS``: the gateway, which overwrites whatever
    the client sent); otherwise the socket peer.
    """
    peer = connection.client.host if connection.client else ""
    trust_all, networks = _trusted_networks(forwarded_allow_ips)
    peer_ip = _ip(peer)
    trusted = trust_all or (
        peer_ip is not None and any(ipaddress.ip_address(peer_ip) in net for net in networks)
    )
    if trusted:
        forwarded = connection.headers.get("x-forwarded-for", "").split(",")[0]
        claimed = _ip(connection.headers.get("x-real-ip")) or _ip(forwarded)
        if claimed:
            return claimed
    return peer_ip or peer or "unknown"
