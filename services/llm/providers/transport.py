"""An HTTP transport for the provider SDKs on aiohttp's C parser.

The official `openai` and `anthropic` SDKs send every request through an
`httpx2.AsyncClient`; its default transport (httpcore, h11, anyio) costs
more CPU per call than the rest of the gateway together. This transport
keeps the SDKs whole (auth, error mapping, streaming) and swaps only the
wire underneath; failures become the httpx2 exceptions the SDKs expect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx2
from opentelemetry.trace import Tracer

from services.llm.providers.base import ProviderSettings
from services.llm.providers.direct import let_go, provider_span


@contextlib.contextmanager
def _mapped_errors(timeout: dict[str, Any]) -> Iterator[None]:
    """aiohttp's exceptions as the httpx2 ones the SDKs turn into APITimeoutError / APIConnectionError."""
    try:
        yield
    except (aiohttp.ServerTimeoutError, TimeoutError) as error:
        raise httpx2.ReadTimeout(f"no data within {timeout.get('read')} s") from error
    except aiohttp.ClientConnectorError as error:
        raise httpx2.ConnectError(str(error)) from error
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as error:
        raise httpx2.RemoteProtocolError(str(error) or type(error).__name__) from error
    except aiohttp.ClientError as error:
        raise httpx2.NetworkError(str(error) or type(error).__name__) from error


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, timeout: dict[str, Any]) -> None:
        self._response = response
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors(self._timeout):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        let_go(self._response)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, tracer: Tracer | None = None) -> None:
        self._max_connections = max_connections
        self._tracer = tracer
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            # httpx2 decodes gzip itself, and the SDKs set every header they need.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        with provider_span(self._tracer, request.method, str(request.url)) as span:
            request.headers.update(span.carrier)
            response = await self._send(request)
            span.answered(response.status_code)
            return response

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        client_timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.get("connect"), sock_read=timeout.get("read"), connect=timeout.get("pool")
        )
        body = await request.aread()
        with _mapped_errors(timeout):
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                data=body or None,
                timeout=client_timeout,
                allow_redirects=False,
            )
        return httpx2.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, timeout),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Lets aiohttp's connection transports finish closing before the loop might end.
            await asyncio.sleep(0)


def sdk_client_options(settings: ProviderSettings, tracer: Tracer | None) -> dict[str, Any]:
    """What both provider SDKs' clients are built with: the key and URL, no retries of their own (the gateway
    retries across models), and this transport under httpx2's client."""
    return {
        "api_key": settings.api_key,
        "base_url": settings.base_url,
        "max_retries": 0,
        "http_client": httpx2.AsyncClient(
            transport=AiohttpTransport(max_connections=settings.max_connections, tracer=tracer)
        ),
    }


def call_timeout(timeout_s: float, connect_timeout_s: float) -> httpx2.Timeout:
    """One call's timeout for the SDKs (both use httpx2's): `timeout_s` per wait, connecting within both."""
    return httpx2.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
