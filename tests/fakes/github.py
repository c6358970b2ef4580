"""A local GitHub for sign-in tests: the OAuth App web flow and the two REST endpoints it reads, on the wire
as GitHub speaks them.

- `GET /login/oauth/authorize?client_id&redirect_uri&scope&state[&login]`: GitHub's authorization page. The
  fake approves at once as the scripted person (`login=` picks one, as GitHub's parameter suggests an
  account; else `signed_in_as`) and sends the browser to `redirect_uri?code=…&state=…`; with `deny_next()`
  it sends `error=access_denied&error_description=…&error_uri=…&state=…` instead; with `interactive` it
  shows a page with an "Authorize" link (`#authorize`) and a "Cancel" link (`#cancel`) for a browser to click.
- `POST /login/oauth/access_token` (a form: client_id, client_secret, code, redirect_uri): with
  `Accept: application/json`, `{"access_token", "token_type": "bearer", "scope"}`, or GitHub's 200 with
  `{"error": "bad_verification_code" | "incorrect_client_credentials" | "redirect_uri_mismatch", ...}`;
  without it, the same form-encoded. Each code works once and for ten minutes.
- `GET /user` and `GET /user/emails` with `Authorization: Bearer <token>` (or `token <token>`): the profile,
  and the addresses when the token has `user:email`; 401 `{"message": "Bad credentials"}` otherwise.

    with FakeGitHub(users=[GitHubUser(1, "octocat", email=None, emails=("octo@example.com",))]) as github:
        env = github.env()  # SPARK_AUTH* settings for a suite run as a subprocess

Every request is recorded (`requests`), so a test can check what the suite sent where (the client secret
to the token endpoint only).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "Iv1.fake0client0id0"
CLIENT_SECRET = "fake-client-secret-" + "0123456789abcdef" * 2
CODE_TTL_S = 600
DOCS = "https://docs.github.com/apps/managing-oauth-apps"


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    # The public profile email (None: the person keeps it private, as many do).
    email: str | None = None
    # Every address; the first is the primary one, and all are verified.
    emails: tuple[str, ...] = ()
    name: str | None = None

    @property
    def avatar_url(self) -> str:
        return f"https://avatars.githubusercontent.com/u/{self.id}?v=4"

    def profile(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": self.id,
            "node_id": f"U_{self.id}",
            "avatar_url": self.avatar_url,
            "html_url": f"https://github.com/{self.login}",
            "type": "User",
            "site_admin": False,
            "name": self.name,
            "email": self.email,
        }


OCTOCAT = GitHubUser(583231, "octocat", email="octocat@github.com", name="The Octocat")
HUBOT = GitHubUser(7, "Hubot", email=None, emails=("hubot@example.com", "old@example.com"))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class _Grant:
    user: GitHubUser
    scope: str
    redirect_uri: str
    expires_at: float


@dataclass
class FakeGitHub:
    users: Iterable[GitHubUser] = (OCTOCAT, HUBOT)
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    # The OAuth App's registered callback URL; None takes any.
    callback_url: str | None = None
    # Who approves when the authorization request names no `login`.
    signed_in_as: str = "octocat"
    # Show an authorization page (links #authorize and #cancel) instead of approving at once.
    interactive: bool = False
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _accounts: dict[str, GitHubUser] = field(default_factory=dict)
    _denials: int = 0
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, _Grant] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for user in self.users:
            self.add_user(user)

    # --- scripting -------------------------------------------------------------------------------------

    def add_user(self, user: GitHubUser) -> None:
        self._accounts[user.login.lower()] = user

    def deny_next(self, times: int = 1) -> None:
        """The next authorization(s) are refused by the person (`error=access_denied`)."""
        self._denials += times

    def env(self, public_url: str | None = None) -> dict[str, str]:
        """The settings that point a suite's sign-in at this fake."""
        env = {
            "SPARK_AUTH": "github",
            "SPARK_AUTH_GITHUB_CLIENT_ID": self.client_id,
            "SPARK_AUTH_GITHUB_CLIENT_SECRET": self.client_secret,
            "SPARK_AUTH_GITHUB_URL": self.url,
            "SPARK_AUTH_GITHUB_API_URL": f"{self.url}/api",
        }
        if public_url is not None:
            env["SPARK_PUBLIC_URL"] = public_url
        return env

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # --- running ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        fake = self

        class Handler(_Handler):
            github = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-github", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- the flow --------------------------------------------------------------------------------------

    def account(self, login: str | None) -> GitHubUser:
        """The person who approves: `login`, else `signed_in_as`. KeyError for an unknown login."""
        return self._accounts[(login or self.signed_in_as).lower()]

    def grant(self, user: GitHubUser, scope: str, redirect_uri: str) -> str:
        code = secrets.token_hex(10)
        with self._lock:
            self._codes[code] = _Grant(user, scope, redirect_uri, time.monotonic() + CODE_TTL_S)
        return code

    def take_denial(self) -> bool:
        with self._lock:
            if self._denials > 0:
                self._denials -= 1
                return True
        return False

    def exchange(self, form: dict[str, str]) -> dict[str, str]:
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires_at < time.monotonic():
            return _error("bad_verification_code", "The code passed is incorrect or expired.")
        if "redirect_uri" in form and form["redirect_uri"] != grant.redirect_uri:
            return _error(
                "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application."
            )
        token = "gho_" + secrets.token_urlsafe(27)
        with self._lock:
            self._tokens[token] = grant
        return {"access_token": token, "token_type": "bearer", "scope": grant.scope.replace(" ", ",")}

    def token_grant(self, authorization: str | None) -> _Grant | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        with self._lock:
            return self._tokens.get(token.strip())


def _error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description, "error_uri": f"{DOCS}/#{error.replace('_', '-')}"}


class _Handler(BaseHTTPRequestHandler):
    github: FakeGitHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeGitHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `requests`."""

    def _record(self, form: dict[str, str]) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.github.requests.append(Recorded(self.command, parts.path, query, headers, form))
        return parts.path, query

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document).encode(), "application/json; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/html; charset=utf-8", {"Location": location})

    def do_GET(self) -> None:
        path, query = self._record({})
        if path == "/login/oauth/authorize":
            self._authorize(query)
        elif path == "/login/oauth/authorize/decide":
            self._decide(query)
        elif path in ("/api/user", "/api/user/emails"):
            self._api(path)
        else:
            self._json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        path, _ = self._record(form)
        if path != "/login/oauth/access_token":
            self._json(404, {"message": "Not Found"})
            return
        answer = self.github.exchange(form)
        if "application/json" in (self.headers.get("Accept") or ""):
            self._json(200, answer)
        else:
            self._send(200, urlencode(answer).encode(), "application/x-www-form-urlencoded; charset=utf-8")

    def _authorize(self, query: dict[str, str]) -> None:
        github = self.github
        if query.get("client_id") != github.client_id:
            self._send(404, b"<h1>404: this OAuth App does not exist</h1>", "text/html; charset=utf-8")
            return
        redirect_uri = query.get("redirect_uri") or github.callback_url or ""
        state = query.get("state", "")
        if github.callback_url is not None and redirect_uri != github.callback_url:
            self._redirect(
                _with_query(
                    github.callback_url,
                    {
                        **_error(
                            "redirect_uri_mismatch",
                            "The redirect_uri MUST match the registered callback URL for this application.",
                        ),
                        "state": state,
                    },
                )
            )
            return
        if github.interactive:
            decide = f"/login/oauth/authorize/decide?{urlencode({**query, 'redirect_uri': redirect_uri})}"
            page = (
                "<!doctype html><title>Authorize application</title>"
                f"<p>Authorize {query.get('client_id')} to read your profile ({query.get('scope', '')})?</p>"
                f'<a id="authorize" href="{decide}&amp;decision=allow">Authorize</a> '
                f'<a id="cancel" href="{decide}&amp;decision=deny">Cancel</a>'
            )
            self._send(200, page.encode(), "text/html; charset=utf-8")
            return
        self._finish(query, redirect_uri, allow=not github.take_denial())

    def _decide(self, query: dict[str, str]) -> None:
        self._finish(query, query.get("redirect_uri", ""), allow=query.get("decision") == "allow")

    def _finish(self, query: dict[str, str], redirect_uri: str, *, allow: bool) -> None:
        state = query.get("state", "")
        if not allow:
            answer = _error("access_denied", "The user has denied your application access.")
            self._redirect(_with_query(redirect_uri, {**answer, "state": state}))
            return
        try:
            user = self.github.account(query.get("login"))
        except KeyError:
            self._send(404, b"<h1>no such GitHub account</h1>", "text/html; charset=utf-8")
            return
        code = self.github.grant(user, query.get("scope", ""), redirect_uri)
        self._redirect(_with_query(redirect_uri, {"code": code, "state": state}))

    def _api(self, path: str) -> None:
        grant = self.github.token_grant(self.headers.get("Authorization"))
        if grant is None:
            self._json(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
            return
        if path == "/api/user":
            self._json(200, grant.user.profile())
            return
        if "user:email" not in grant.scope.split() and "user" not in grant.scope.split():
            self._json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
            return
        addresses = grant.user.emails or ((grant.user.email,) if grant.user.email else ())
        self._json(
            200,
            [
                {
                    "email": address,
                    "primary": index == 0,
                    "verified": True,
                    "visibility": "public" if index == 0 else None,
                }
                for index, address in enumerate(addresses)
            ],
        )


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
