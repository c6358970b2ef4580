"""Fetching image URLs: the SSRF guard, address pinning, and size, time, redirect and status limits.

A small HTTP/1.1 server on 127.0.0.1 plays the image host; it counts connections, so a refused fetch can
be shown never to have reached it. Reaching it at all takes `allow_private=True`, which only tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from services.common.errors import InvalidArgument
from services.vision.fetch import Resolver, fetch_image, refused_address
from services.vision.images import Image, ImageTooLarge
from tests.support.ports import free_port

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
LIMIT = 100_000


def response(status: str, body: bytes = b"", headers: Sequence[str] = ()) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class ImageHost:
    """An HTTP server whose routes each misbehave in one way."""

    port: int = 0
    connections: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    streamed_bytes: int = 0
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.rstrip("\r\n").split("\r\n")
            path = request_line.split(" ")[1]
            self.requests.append((path, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}))
            await self.route(path, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def route(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if path == "/x.png":
            writer.write(response("200 OK", PNG, ["Content-Type: image/png"]))
        elif path == "/endless.png":
            await self.stream_until_hung_up(writer)
        elif path == "/declared-big.png":
            writer.write(response("200 OK", PNG + bytes(LIMIT), ["Content-Type: image/png"]))
        elif path == "/slow.png":
            await reader.read()  # until the client gives up and closes
        elif path == "/redirect.png":
            writer.write(response("302 Found", headers=["Location: /x.png"]))
        elif path == "/text":
            writer.write(response("200 OK", b"hello, not an image", ["Content-Type: image/png"]))
        else:
            writer.write(response("404 Not Found", b"no such image"))
        await writer.drain()

    async def stream_until_hung_up(self, writer: asyncio.StreamWriter) -> None:
        # No Content-Length: the body runs until the connection closes, so only the client can end it.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n" + PNG)
        chunk = bytes(64 * 1024)
        try:
            for _ in range(2000):  # 128 MiB at most, should the client never hang up
                await writer.drain()
                writer.write(chunk)
                self.streamed_bytes += len(chunk)
        except ConnectionError:
            self.hung_up.set()


@pytest_asyncio.fixture
async def host() -> AsyncIterator[ImageHost]:
    image_host = ImageHost()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await image_host.handle(reader, writer)
        finally:
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    image_host.port = server.sockets[0].getsockname()[1]
    async with server:
        yield image_host
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def url(host: ImageHost, path: str, name: str = "127.0.0.1") -> str:
    return f"http://{name}:{host.port}{path}"


async def fetch(
    target: str, *, resolver: Resolver | None = None, allow_private: bool = True, timeout_s: float = 5.0
) -> Image:
    return await fetch_image(
        target, max_bytes=LIMIT, timeout_s=timeout_s, resolver=resolver, allow_private=allow_private
    )


async def refused(
    target: str, reason: str, *, resolver: Resolver | None = None, allow_private: bool = True, timeout_s: float = 5.0
) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        await fetch(target, resolver=resolver, allow_private=allow_private, timeout_s=timeout_s)
    assert caught.value.reason == reason, caught.value.message
    assert caught.value.violations[0].field == "image_url"
    return caught.value


def static_resolver(*answers: Sequence[str]) -> tuple[Resolver, list[str]]:
    """A resolver giving one answer per call (the last one repeated), and the hosts it was asked for."""
    asked: list[str] = []

    async def resolve(name: str, port: int) -> Sequence[str]:
        asked.append(name)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible
        ("8.8.8.8", None),
        ("172.32.0.1", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_refused_address(address: str, why: str | None) -> None:
    assert refused_address(address) == why


async def test_the_guard_refuses_loopback_before_connecting(host: ImageHost) -> None:
    for target in (url(host, "/x.png"), url(host, "/x.png", "[::1]"), url(host, "/x.png", "localhost")):
        error = await refused(target, "IMAGE_URL_NOT_ALLOWED", allow_private=False)
        assert "loopback" in error.message
    assert host.connections == 0


async def test_one_refused_address_among_public_ones_refuses_the_host(host: ImageHost) -> None:
    resolver, asked = static_resolver(["8.8.8.8", "2606:4700::1111", "10.0.0.7"])
    error = await refused(
        url(host, "/x.png", "images.test"), "IMAGE_URL_NOT_ALLOWED", resolver=resolver, allow_private=False
    )
    assert "private" in error.message
    assert asked == ["images.test"]
    assert host.connections == 0


async def test_a_fetch_connects_to_the_resolved_address_only(host: ImageHost) -> None:
    # A rebinding resolver: the first answer is vetted and pinned, so a second answer is never asked for.
    resolver, asked = static_resolver(["127.0.0.1"], ["192.0.2.66"])
    image = await fetch(url(host, "/x.png", "images.test"), resolver=resolver)
    assert (image.mime, bytes(image.data)) == ("image/png", PNG)
    assert asked == ["images.test"]
    [(path, headers)] = host.requests
    assert (path, headers["host"]) == ("/x.png", f"images.test:{host.port}")
    assert headers["accept-encoding"] == "identity"


async def test_a_streamed_body_past_the_limit_is_cut_off(host: ImageHost) -> None:
    with pytest.raises(ImageTooLarge) as caught:
        await fetch(url(host, "/endless.png"))
    assert caught.value.size > LIMIT
    assert "at least" in caught.value.message
    await asyncio.wait_for(host.hung_up.wait(), 5)
    # Socket buffers hold some, but the server is stopped long before its 128 MiB.
    assert host.streamed_bytes < 32 * 1024 * 1024


async def test_a_declared_length_past_the_limit_is_refused_unread(host: ImageHost) -> None:
    with pytest.raises(ImageTooLarge) as caught:
        await fetch(url(host, "/declared-big.png"))
    assert caught.value.size == len(PNG) + LIMIT
    assert f"is {len(PNG) + LIMIT} bytes" in caught.value.message


async def test_a_slow_server_times_out(host: ImageHost) -> None:
    started = time.monotonic()
    error = await refused(url(host, "/slow.png"), "IMAGE_FETCH_FAILED", timeout_s=0.3)
    assert "longer than 0.3 s" in error.message
    assert time.monotonic() - started < 3


async def test_a_redirect_is_refused_not_followed(host: ImageHost) -> None:
    error = await refused(url(host, "/redirect.png"), "IMAGE_URL_REDIRECT")
    assert "302" in error.message
    assert "/x.png" in error.message
    assert [path for path, _ in host.requests] == ["/redirect.png"]


async def test_an_error_status(host: ImageHost) -> None:
    error = await refused(url(host, "/missing.png"), "IMAGE_FETCH_FAILED")
    assert "404" in error.message


async def test_a_body_that_is_not_an_image(host: ImageHost) -> None:
    await refused(url(host, "/text"), "UNSUPPORTED_IMAGE_TYPE")


async def test_connection_and_resolution_failures_are_the_callers() -> None:
    await refused(f"http://127.0.0.1:{free_port()}/x.png", "IMAGE_FETCH_FAILED")

    async def unresolvable(name: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    error = await refused("https://nowhere.test/x.png", "IMAGE_FETCH_FAILED", resolver=unresolvable)
    assert "could not be resolved" in error.message


@pytest.mark.parametrize("target", ["ftp://example.com/x.png", "data:image/png;base64,AAAA", "http:///x.png", "x"])
async def test_only_http_urls_are_fetched(target: str) -> None:
    await refused(target, "INVALID_IMAGE_URL")
