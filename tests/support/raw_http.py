"""A raw HTTP/1.1 client for hostile requests.

The method, the request target and every header go out byte for byte: no client library normalises
`../`, re-encodes `%2e`, refuses a header name or counts headers. Sending stops as soon as the server
answers, as Envoy does to headers that are too large or a body over a limit, so the answer is read
rather than lost to a broken pipe. One request per connection (`Connection: close`).
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Header = tuple[str | bytes, str | bytes]
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A parsed answer; `status` is 0 if the server closed the connection without one."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def encode_request(
    method: str | bytes, target: str | bytes, host: str, headers: Sequence[Header] = (), body: bytes | None = None
) -> bytes:
    """The request's bytes; `Content-Length` is added for a body unless a header already sets the framing."""
    lines = [_bytes(method) + b" " + _bytes(target) + b" HTTP/1.1", b"Host: " + host.encode(), b"Connection: close"]
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    framed = any(_bytes(name).lower() in (b"content-length", b"transfer-encoding") for name, _ in headers)
    if body is not None and not framed:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size, _, data = data.partition(b"\r\n")
        length = int(size.split(b";")[0], 16)
        if length == 0:
            break
        out += data[:length]
        data = data[length + 2 :]
    return bytes(out)


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2) if lines[0] else []
    if len(parts) < 2 or not parts[1].isdigit():
        return RawResponse(0, {}, data)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(int(parts[1]), headers, body)


def send(
    address: str,
    method: str | bytes,
    target: str | bytes,
    headers: Sequence[Header] = (),
    body: bytes | None = None,
    *,
    timeout_s: float = 60.0,
) -> RawResponse:
    """Sends one request to `host:port` and returns the answer (read until the server closes)."""
    host, _, port = address.rpartition(":")
    data = memoryview(encode_request(method, target, host, headers, body))
    received = bytearray()
    sent = 0
    deadline = time.monotonic() + timeout_s
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock, selectors.DefaultSelector() as sel:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while time.monotonic() < deadline:
            events = sel.select(timeout=1.0)
            if not events:
                continue
            readable = any(mask & selectors.EVENT_READ for _, mask in events)
            if readable:
                try:
                    chunk = sock.recv(_CHUNK)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                received += chunk
                if sent < len(data):
                    # The server answered before reading everything: stop sending, read the answer.
                    sent = len(data)
                    sel.modify(sock, selectors.EVENT_READ)
            elif sent < len(data):
                try:
                    sent += sock.send(data[sent : sent + _CHUNK])
                except (BrokenPipeError, ConnectionResetError):
                    sent = len(data)
                if sent >= len(data):
                    sel.modify(sock, selectors.EVENT_READ)
        else:
            raise TimeoutError(f"no complete answer from {address} within {timeout_s:g} s")
    return parse_response(bytes(received))
