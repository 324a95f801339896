"""Network addresses: which ones only this machine can reach (doge serve, a local Ray)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses, IPv4-mapped IPv6 ones (``::ffff:127.0.0.1``) too."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
