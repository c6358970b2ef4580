"""A provider's HTTP API called straight on aiohttp, sending what its official SDK sends.

The SDKs' request path (options, header merging, httpx2 models, retries bookkeeping) cost more CPU per
completion than the rest of the gateway together, for a request that is one POST of a JSON body. This
client sends that POST itself: the headers are the SDK's own (`fixed_headers`, read from a client of
the SDK), the body is the JSON the SDK would send, and failures become the same `ProviderError`s. The
equivalence is a test (tests/integration/test_llm_direct.py): the same call through the SDK and through
this client reach a fake provider as the same method, path, headers and body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import aiohttp
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, StatusCode, Tracer, get_current_span
from yarl import URL

from services.llm.providers.base import ProviderError, ProviderSettings


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's whole answer to one request."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@contextlib.contextmanager
def mapped_errors(provider: str) -> Iterator[None]:
    """aiohttp's failures as the errors the SDKs' would become (a timeout, or the provider out of reach)."""
    try:
        yield
    except (aiohttp.ServerTimeoutError, TimeoutError) as error:
        raise ProviderError(provider, "timeout", f"{provider} did not answer in time") from error
    except aiohttp.ClientError as error:
        raise ProviderError(provider, "retryable", f"could not reach {provider}") from error


class DirectClient:
    def __init__(
        self, settings: ProviderSettings, fixed_headers: Mapping[str, str], *, tracer: Tracer | None = None
    ) -> None:
        self._provider = settings.name
        self._base = settings.base_url.rstrip("/")
        self._connect_timeout_s = settings.connect_timeout_s
        self._max_connections = settings.max_connections
        self._headers = dict(fixed_headers)
        self._tracer = tracer
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            # Every header is the SDK's; aiohttp adds only Host, Content-Length and Accept-Encoding (and
            # decodes what that allows, as httpx does for the SDK).
            self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
        return self._session

    def _request_headers(self, timeout_s: float, extra: Mapping[str, str]) -> dict[str, str]:
        # What the SDK adds per request: no retries of its own, and the read timeout it was given.
        return {**self._headers, "x-stainless-retry-count": "0", "x-stainless-read-timeout": str(timeout_s), **extra}

    def _timeout(self, timeout_s: float) -> aiohttp.ClientTimeout:
        connect = min(self._connect_timeout_s, timeout_s)
        return aiohttp.ClientTimeout(sock_connect=connect, sock_read=timeout_s, connect=timeout_s)

    async def post(self, path: str, body: bytes, timeout_s: float) -> Answer:
        """POSTs a JSON body and reads the whole answer, whatever its status."""
        async with self.stream(path, body, timeout_s) as response:
            with mapped_errors(self._provider):
                content = await response.read()
        return Answer(response.status, response.headers, content)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: bytes, timeout_s: float) -> AsyncIterator[aiohttp.ClientResponse]:
        """POSTs a JSON body and hands over the unread response (read it within `mapped_errors`). Read to its
        end, its connection goes back to the pool; left early (a cancelled call), it is closed, so the provider
        sees the caller hang up."""
        url = f"{self._base}{path}"
        with self._span(url) as carrier:
            with mapped_errors(self._provider):
                response = await self._open().post(
                    url,
                    data=body,
                    headers=self._request_headers(timeout_s, carrier),
                    timeout=self._timeout(timeout_s),
                    allow_redirects=False,
                )
            self._answered(response.status)
            try:
                yield response
            finally:
                if response.content.at_eof():
                    response.release()
                else:
                    response.close()

    @contextlib.contextmanager
    def _span(self, url: str) -> Iterator[dict[str, str]]:
        """One client span per provider call, its context passed on in `traceparent` (the query string, which
        may carry keys for some providers, stays out of the span); the carrier headers, empty when untraced."""
        carrier: dict[str, str] = {}
        if self._tracer is None:
            yield carrier
            return
        parsed = URL(url)
        attributes: dict[str, str | int] = {
            "http.request.method": "POST",
            "url.full": str(parsed.with_query(None)),
            "server.address": parsed.host or "",
            "server.port": parsed.port or 0,
        }
        with self._tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=attributes):
            inject(carrier)
            yield carrier

    def _answered(self, status: int) -> None:
        if self._tracer is None:
            return
        span = get_current_span()
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
