"""Signing in with GitHub, signing out, and the page loads of an app that needs a session.

Each step answers a `Reply` (status, headers, body) that the servicer sends as an HttpBody with the
`x-http-status`, `Location` and `Set-Cookie` headers; refusals are domain errors (JSON at the edge).
Every parameter is bounded before it is used, and login and callback count against a per-address limit.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson

from services.access.config import GitHubOAuth, SignInGate
from services.access.limiter import Limiter
from services.access.oauth import CALLBACK_ERRORS, GitHub
from services.access.sessions import (
    SESSION_COOKIE,
    STATE_COOKIE,
    STATE_COOKIE_PATH,
    STATE_TTL_S,
    Session,
    SessionBook,
    SignInStates,
    clear_cookie,
    cookie_values,
    looks_like_secret,
    same_origin_path,
    set_cookie,
    write_refusal,
)
from services.access.users import User
from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    quoted,
)

logger = logging.getLogger(__name__)

LOGIN_PATH = "/_spark/auth/login"
# GitHub's codes are 20 hex digits; a little room for other providers of the same flow, nothing more.
_CODE = re.compile(r"[A-Za-z0-9._~-]{1,256}")
_ERROR = re.compile(r"[a-z0-9_]{1,64}")
MAX_ERROR_DESCRIPTION_CHARS = 512
ATTEMPT_WINDOW_S = 60
HTML = "text/html; charset=utf-8"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_type: str = JSON


def _redirect(location: str, *cookies: str) -> Reply:
    headers = [("location", location), ("cache-control", "no-store")]
    headers += [("set-cookie", cookie) for cookie in cookies]
    return Reply(302, tuple(headers))


def _not_a_path(field: str, value: str) -> InvalidArgument:
    message = f"{field} must be a path on the app's own origin (at most 2048 characters), not {quoted(value)}"
    return InvalidArgument(message, reason="NOT_SAME_ORIGIN", violations=(FieldViolation(field, message),))


class SignIn:
    def __init__(
        self,
        *,
        gate: SignInGate | None,
        oauth: GitHubOAuth | None,
        github: GitHub | None,
        sessions: SessionBook,
        states: SignInStates,
        limiter: Limiter,
        attempts_per_address: int,
        app_snapshot: Path | None,
    ) -> None:
        self._gate = gate
        self._oauth = oauth
        self._github = github
        self._sessions = sessions
        self._states = states
        self._limiter = limiter
        self._attempts = attempts_per_address
        self._snapshot = app_snapshot
        self._index: bytes | None = None

    def _on(self) -> tuple[SignInGate, GitHubOAuth, GitHub]:
        if self._gate is None or self._oauth is None or self._github is None:
            raise FailedPrecondition(
                "sign-in is off on this suite: set SPARK_AUTH=github with an OAuth App", reason="SIGN_IN_DISABLED"
            )
        return self._gate, self._oauth, self._github

    async def _count_attempt(self, address: str) -> None:
        decision = await self._limiter.hit(f"sign-in|{address}", self._attempts, ATTEMPT_WINDOW_S)
        if not decision.allowed:
            raise ResourceExhausted(
                f"too many sign-in attempts from this address ({self._attempts} a minute); wait for the minute to end",
                reason="SIGN_IN_ATTEMPTS",
                retry_after_s=decision.reset_s,
            )

    async def login(self, return_to: str, address: str) -> Reply:
        gate, oauth, github = self._on()
        target = same_origin_path(return_to or "/", gate.public_origin)
        if target is None:
            raise _not_a_path("return_to", return_to)
        await self._count_attempt(address)
        state = await self._states.start(target)
        cookie = set_cookie(
            STATE_COOKIE, state, path=STATE_COOKIE_PATH, max_age_s=STATE_TTL_S, secure=oauth.secure_cookies
        )
        return _redirect(github.authorize_url(state), cookie)

    async def callback(self, query: Mapping[str, str], cookies: Sequence[str], address: str) -> Reply:
        """`query`: code, state, error, error_description as GitHub sent them."""
        _gate, oauth, github = self._on()
        await self._count_attempt(address)
        error = query.get("error", "")
        if error:
            self._refuse_error(error, query.get("error_description", ""))
        state, code = query.get("state", ""), query.get("code", "")
        if not looks_like_secret(state):
            raise InvalidArgument(
                "the sign-in has no valid state: start again at " + LOGIN_PATH, reason="STATE_INVALID"
            )
        # The state must be the one this browser started with (a callback URL sent by someone else is not).
        if state not in cookie_values(cookies, STATE_COOKIE):
            raise InvalidArgument(
                "this sign-in was started in another browser (or its cookie expired): start again at " + LOGIN_PATH,
                reason="STATE_FOREIGN",
            )
        return_to = await self._states.take(state)
        if return_to is None:
            raise InvalidArgument(
                "this sign-in's state was used already or expired (ten minutes): start again at " + LOGIN_PATH,
                reason="STATE_USED",
            )
        if not _CODE.fullmatch(code):
            raise InvalidArgument(
                "the callback carries no valid code: start again at " + LOGIN_PATH, reason="CODE_INVALID"
            )
        token = await github.exchange(code)
        person = (await github.user(token)).to_user()
        # A browser signing in again (as the same person or another) leaves no session of its own behind.
        previous = await self._sessions.find(cookie_values(cookies, SESSION_COOKIE))
        if previous is not None:
            await self._sessions.end(previous)
        secret = await self._sessions.create(person, oauth.session_ttl_s)
        logger.info("signed in", extra={"event": "signed_in", "user": f"github:{person.id}", "login": person.login})
        session = set_cookie(
            SESSION_COOKIE, secret, path="/", max_age_s=oauth.session_ttl_s, secure=oauth.secure_cookies
        )
        return _redirect(
            return_to, session, clear_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, secure=oauth.secure_cookies)
        )

    def _refuse_error(self, error: str, description: str) -> None:
        """GitHub's error redirect as a clear refusal (its words bounded, its code only when it is one)."""
        code = error if _ERROR.fullmatch(error) else "unknown"
        words = CALLBACK_ERRORS.get(code) or f"GitHub did not sign you in ({code})"
        if description and code not in CALLBACK_ERRORS:
            words += f": {quoted(description[:MAX_ERROR_DESCRIPTION_CHARS])}"
        metadata = {"error": code}
        if code == "access_denied":
            raise PermissionDenied(words + "; start again at " + LOGIN_PATH, reason="SIGN_IN_DENIED", metadata=metadata)
        logger.warning("GitHub's callback reported %s", code)
        raise FailedPrecondition(words, reason="SIGN_IN_FAILED", metadata=metadata)

    async def logout(self, return_to: str, headers: Mapping[str, str], cookies: Sequence[str]) -> Reply:
        gate, oauth, _github = self._on()
        target = None
        if return_to:
            target = same_origin_path(return_to, gate.public_origin)
            if target is None:
                raise _not_a_path("return_to", return_to)
        session = await self._sessions.find(cookie_values(cookies, SESSION_COOKIE))
        if session is not None:
            refusal = write_refusal(headers, gate.public_origin)
            if refusal is not None:
                raise refusal
            await self._sessions.end(session)
            logger.info("signed out", extra={"event": "signed_out", "user": f"github:{session.user.id}"})
        cleared = clear_cookie(SESSION_COOKIE, path="/", secure=oauth.secure_cookies)
        if target is not None:
            return _redirect(target, cleared)
        return Reply(200, (("set-cookie", cleared), ("cache-control", "no-store")), orjson.dumps({"signedIn": False}))

    async def session_user(self, cookies: Sequence[str]) -> User | None:
        """The person of a session cookie, `is_owner` as SPARK_OWNERS says; None without a live session."""
        if self._gate is None:
            return None
        session = await self._sessions.find(cookie_values(cookies, SESSION_COOKIE))
        return None if session is None else self.person(session)

    def person(self, session: Session) -> User:
        """A session's person, `is_owner` as SPARK_OWNERS says now (no one is, with sign-in off)."""
        is_owner = self._gate is not None and self._gate.is_owner(session.user.login)
        return dataclasses.replace(session.user, is_owner=is_owner)

    async def open_page(self, path: str, user: User | None) -> Reply:
        """A page load: index.html for `user` (a session's or a key's person), the way to sign in for nobody."""
        gate, _oauth, _github = self._on()
        page = same_origin_path(path or "/", gate.public_origin)
        if page is None:
            raise _not_a_path("path", path)
        if user is None and gate.app_access != "public":
            return _redirect(f"{LOGIN_PATH}?return_to={quote(page, safe='')}")
        if user is not None and gate.app_access == "owners" and not user.is_owner:
            raise PermissionDenied(
                f"this app is for its owners only, and {user.login!r} is not one of them: sign out at "
                "POST /_spark/auth/logout to sign in as someone else",
                reason="OWNERS_ONLY",
            )
        # A page only some may see: no shared cache keeps it, and it is revalidated each time as any index.html.
        return Reply(200, (("cache-control", "private, no-cache"),), self._index_html(), HTML)

    def _index_html(self) -> bytes:
        """The hosted app's index.html from the launcher's snapshot, read once (the snapshot never changes)."""
        if self._index is None:
            if self._snapshot is None:
                raise NotFound("no app is hosted here (SPARK_APP_DIR is unset)", reason="NO_APP")
            try:
                self._index = (self._snapshot / "index.html").read_bytes()
            except OSError as error:
                logger.error("the app snapshot's index.html cannot be read: %s", error.strerror or error)
                raise NotFound("the hosted app has no index.html", reason="NO_APP") from None
        return self._index
