"""The client's address, for the limits counted per address (anonymous callers, failed keys and tokens).

It is the peer Envoy accepted the connection from. Behind a reverse proxy or load balancer that peer
is the proxy for every client, so with `SPARK_TRUSTED_PROXIES` (IPs and CIDRs) a request whose peer
is one of them is taken to come from the address the proxy wrote into `X-Forwarded-For`. The header
is read from the right, one hop at a time, and only as far as the hops are trusted: each entry was
written by the hop to its right, so the first entry that a trusted proxy wrote about an untrusted
address is the client, and what lies to its left (the client's own words) is never believed. From
any other peer, or without the setting, `X-Forwarded-For` changes nothing.

The edge runs with `use_remote_address`, so Envoy itself has appended an entry for its peer before
the check (its own address, for a peer on loopback): that last entry is the edge's, and skipped.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[tuple[Network, ...], list[str]]:
    """Comma-separated IPs and CIDRs; the networks, and the entries that are neither."""
    networks: list[Network] = []
    invalid: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            invalid.append(item)
    return tuple(networks), invalid


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> Address | None:
    """An address as proxies write it (`192.0.2.1`, `2001:db8::1`, `192.0.2.1:443`, `[2001:db8::1]:443`),
    IPv4-mapped IPv6 as IPv4; None for anything else (`unknown`, a hostname, garbage)."""
    host = text.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    def _trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address for a request from `peer` with this `X-Forwarded-For` (as the edge passes it)."""
        current = _address(peer)
        if current is None:
            return peer
        if not self.networks or not forwarded_for or not self._trusts(current):
            return str(current)
        hops = forwarded_for.split(",")[:-1]  # the last is the edge's own entry
        for hop in reversed(hops):
            written = _address(hop)
            if written is None:  # a trusted proxy wrote something unreadable: stop at that proxy
                break
            current = written
            if not self._trusts(current):
                break
        return str(current)
