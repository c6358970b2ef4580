"""Fetching an `image_url` ourselves (off by default: providers fetch URLs), guarded against SSRF.

A URL from a caller must not reach what only this host can reach: loopback, the private network, the
cloud metadata service. So every address the host resolves to is vetted, and the connection is pinned to
those addresses: aiohttp never resolves the name again, so a second DNS answer (rebinding) cannot swap in
an internal one. Redirects are refused rather than followed, since each would need vetting again, and
environment proxies are not used, since they would connect elsewhere than the vetted address. Size and
time are capped; every failure is the caller's bad URL (InvalidArgument), never a 5xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from services.common.errors import FieldViolation, InvalidArgument, quoted
from services.vision.images import Image, ImageTooLarge, check_image

IPAddress = IPv4Address | IPv6Address
# Host and port to the addresses they resolve to (injectable so tests need no DNS).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_FIELD = "image_url"
_CHUNK_BYTES = 64 * 1024
# Identity encoding, so Content-Length is the image's size and no decompression bomb can arrive.
_HEADERS = {"Accept": "image/*", "Accept-Encoding": "identity"}
_NAT64 = IPv6Network("64:ff9b::/96")
_SHARED = IPv4Network("100.64.0.0/10")

# In order, so that an address gets its most specific label.
_REFUSED: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),  # 169.254.169.254, the metadata service, is one
    ("multicast", lambda ip: ip.is_multicast),
    ("shared (carrier-grade NAT)", lambda ip: ip in _SHARED),
    ("private", lambda ip: ip.is_private),
    ("reserved", lambda ip: ip.is_reserved),
    ("non-global", lambda ip: not ip.is_global),
)


def refused_address(address: str | IPAddress) -> str | None:
    """Why an address may not be fetched from ("loopback", "private", ...), or None for a public one."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, IPv6Address):
        # IPv4-mapped, 6to4 and NAT64 addresses reach the IPv4 address inside them: that one is judged.
        embedded = ip.ipv4_mapped or ip.sixtofour or (IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return refused_address(embedded)
    return next((label for label, applies in _REFUSED if applies(ip)), None)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _PinnedResolver(AbstractResolver):
    """Answers aiohttp with the addresses already vetted, whatever it asks."""

    def __init__(self, addresses: Sequence[IPAddress]) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = []
        for ip in self._addresses:
            ip_family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, ip_family):
                results.append(
                    ResolveResult(
                        hostname=host, host=str(ip), port=port, family=ip_family, proto=0, flags=socket.AI_NUMERICHOST
                    )
                )
        return results

    async def close(self) -> None:
        return None


def _failed(message: str, reason: str = "IMAGE_FETCH_FAILED") -> InvalidArgument:
    return InvalidArgument(message, reason=reason, violations=(FieldViolation(_FIELD, message),))


async def fetch_image(
    url: str, *, max_bytes: int, timeout_s: float, resolver: Resolver | None = None, allow_private: bool = False
) -> Image:
    """Fetches and checks the image at an http(s) URL within `timeout_s` (DNS included) and `max_bytes`.

    `allow_private` turns the address guard off; it exists for tests that fetch from a local server.
    """
    try:
        target = URL(url)
    except ValueError:
        target = None
    if target is None or target.scheme not in ("http", "https") or not target.raw_host or target.port is None:
        raise _failed(f"{_FIELD} must be an http(s) URL with a host", "INVALID_IMAGE_URL")
    try:
        async with asyncio.timeout(timeout_s):
            addresses = await _vetted_addresses(target.raw_host, target.port, resolver or system_resolver)
            if not allow_private:
                _check_addresses(addresses)
            data = await _download(target, addresses, max_bytes)
    except TimeoutError:
        raise _failed(f"fetching {_FIELD} took longer than {timeout_s:g} s") from None
    return check_image(data, max_bytes, field=_FIELD)


async def _vetted_addresses(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name, not an address literal
    try:
        addresses = [ipaddress.ip_address(address) for address in await resolver(host, port)]
    except OSError as error:  # socket.gaierror
        raise _failed(f"the host of {_FIELD} ({host}) could not be resolved: {error.strerror or error}") from None
    if not addresses:
        raise _failed(f"the host of {_FIELD} ({host}) has no address")
    return addresses


def _check_addresses(addresses: Sequence[IPAddress]) -> None:
    # Any one refused address refuses the host: the connection may use any of them.
    for ip in addresses:
        why = refused_address(ip)
        if why is not None:
            raise _failed(f"{_FIELD} points to a {why} address, which may not be fetched", "IMAGE_URL_NOT_ALLOWED")


async def _download(target: URL, addresses: Sequence[IPAddress], max_bytes: int) -> bytes:
    connector = aiohttp.TCPConnector(resolver=_PinnedResolver(addresses), use_dns_cache=False, force_close=True)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False, timeout=aiohttp.ClientTimeout(total=None)
            ) as session,
            session.get(target, allow_redirects=False, headers=_HEADERS) as response,
        ):
            if 300 <= response.status < 400:
                location = quoted(response.headers.get("Location", ""))
                message = f"{_FIELD} redirects (HTTP {response.status}) to {location}; give the final URL"
                raise _failed(message, "IMAGE_URL_REDIRECT")
            if not 200 <= response.status < 300:
                raise _failed(f"fetching {_FIELD} answered HTTP {response.status}")
            if response.content_length is not None and response.content_length > max_bytes:
                raise ImageTooLarge(response.content_length, max_bytes, field=_FIELD)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    # Leaving the response unread closes the connection: the server stops sending.
                    raise ImageTooLarge(size, max_bytes, field=_FIELD, exact=False)
                chunks.append(chunk)
            return b"".join(chunks)
    except (aiohttp.ClientError, OSError) as error:
        # Details (addresses, TLS internals) stay here; the kind of failure is enough for the caller.
        raise _failed(f"fetching {_FIELD} failed: {type(error).__name__}") from None
