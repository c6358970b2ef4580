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
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
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


@dataclass(slots=True)
class ProviderSpan:
    """The trace context to send with a provider call (empty when untraced), and where its status goes."""

    carrier: dict[str, str]
    span: Span | None

    def answered(self, status: int) -> None:
        if self.span is None:
            return
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(StatusCode.ERROR)


@contextlib.contextmanager
def provider_span(tracer: Tracer | None, method: str, address: str) -> Iterator[ProviderSpan]:
    """One client span per provider call, its context passed on in `traceparent` (the query string, which may
    carry keys for some providers, stays out of the span). Untraced, the URL is not even parsed."""
    if tracer is None:
        yield ProviderSpan({}, None)
        return
    url = URL(address)
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": str(url.with_query(None)),
        "server.address": url.host or "",
        "server.port": url.port or (443 if url.scheme == "https" else 80),
    }
    with tracer.start_as_current_span(method, kind=SpanKind.CLIENT, attributes=attributes) as span:
        carrier: dict[str, str] = {}
        inject(carrier)
        yield ProviderSpan(carrier, span)


def let_go(response: aiohttp.ClientResponse) -> None:
    """Ends a response: read to its end, its connection goes back to the pool; cut short (a cancelled call),
    the connection is closed, so the provider sees the caller hang up."""
    if response.content.at_eof():
        response.release()
    else:
        response.close()


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
        """POSTs a JSON body and hands over the unread response (read it within `mapped_errors`), let go of
        when the block ends (`let_go`)."""
        url = f"{self._base}{path}"
        with provider_span(self._tracer, "POST", url) as span:
            with mapped_errors(self._provider):
                response = await self._open().post(
                    url,
                    data=body,
                    headers=self._request_headers(timeout_s, span.carrier),
                    timeout=self._timeout(timeout_s),
                    allow_redirects=False,
                )
            span.answered(response.status)
            try:
                yield response
            finally:
                let_go(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
