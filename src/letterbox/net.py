"""Client addresses as limits and penalties count them."""

from __future__ import annotations

import ipaddress


def client_key(ip: str) -> str:
    """The key limits are counted under: the address, or its /64 for IPv6."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)
