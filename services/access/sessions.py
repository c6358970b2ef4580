"""Sessions of people signed in with GitHub, and the cookies that carry them.

A session is a random secret (`secrets.token_urlsafe(32)`, 256 bits) in the `spark_session` cookie. The
store holds only its SHA-256 hash, with the user and the expiry, under a TTL: a stolen copy of the store
names no usable cookie, and a session ends by itself when its lifetime (SPARK_SESSION_TTL_S) is over.
Every check reads the store (no cache), so a logout or an admin's revocation ends a session at once on
every instance; what that costs per request is measured in README's "Sign in with GitHub".

The single-use `state` of a sign-in lives here too: stored (as a hash) when the sign-in starts, taken
once by the callback, and bound to the browser that started it by a cookie of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from services.access.users import User
from services.common.errors import PermissionDenied
from services.common.store import Check, Delete, Mutation, Set, Store

SESSIONS = "access-sessions"
# `<user id>|<session hash>`: a user's sessions, for an admin's revocation.
SESSION_USERS = "access-session-users"
# A GitHub login (lowercased) -> its user id, so that an admin may name a user by login.
LOGINS = "access-github-logins"
STATES = "access-sign-in-states"

SESSION_COOKIE = "spark_session"
STATE_COOKIE = "spark_auth_state"
# Where the state cookie is sent: the callback only.
STATE_COOKIE_PATH = "/_spark/auth/callback"
# GitHub's codes live ten minutes; a sign-in that takes longer starts over.
STATE_TTL_S = 600
# The shape of `secrets.token_urlsafe(32)`: anything else is no session and no state of ours.
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
# How many cookies of one name a request may carry that are looked up (a browser may keep one per path).
MAX_COOKIES_TRIED = 3
MAX_RETURN_TO_CHARS = 2048
# Sessions listed or revoked per store call, and listed at most.
PAGE = 1000
MAX_LISTED = 10_000


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def looks_like_secret(value: str) -> bool:
    return _SECRET.fullmatch(value) is not None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now_iso(now_s: float) -> str:
    return dt.datetime.fromtimestamp(now_s, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- cookies ---------------------------------------------------------------------------------------------


def cookie_values(headers: Iterable[str], name: str) -> list[str]:
    """The values of the cookies called `name` in `Cookie` headers (a request may carry several headers, and
    one name several times), in order, at most MAX_COOKIES_TRIED."""
    values = []
    for header in headers:
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key.strip() == name:
                values.append(value.strip().strip('"'))
                if len(values) >= MAX_COOKIES_TRIED:
                    return values
    return values


def set_cookie(name: str, value: str, *, path: str, max_age_s: int, secure: bool) -> str:
    """A `Set-Cookie` value: HttpOnly (no script reads it), SameSite=Lax (no cross-site subrequest carries it),
    Secure when the app is served over https."""
    attributes = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age_s}", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def clear_cookie(name: str, *, path: str, secure: bool) -> str:
    return set_cookie(name, "", path=path, max_age_s=0, secure=secure)


# --- cookie writes from elsewhere ------------------------------------------------------------------------

# The method the client used, which the edge writes on every HTTP route (the transcoder makes every call a POST).
ORIGINAL_METHOD_HEADER = "x-spark-original-method"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def write_refusal(headers: Mapping[str, str], public_origin: str) -> PermissionDenied | None:
    """Why a call that a session cookie would admit is refused as a write from another site, or None.

    SameSite=Lax keeps the cookie off other sites' subrequests already; this also stops a sibling origin
    (another port, a subdomain) and browsers that ignore SameSite. A write (any method but GET, HEAD and
    OPTIONS; an unknown one too) needs the app's own `Origin`, which browsers send with every such fetch;
    without one, `Sec-Fetch-Site: same-origin` will do. `Sec-Fetch-Site: cross-site` is refused whatever
    the Origin says.
    """
    if headers.get(ORIGINAL_METHOD_HEADER, "").upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site", "").strip().lower()
    origin = headers.get("origin")
    if site == "cross-site":
        why = "it comes from another site (Sec-Fetch-Site: cross-site)"
    elif origin is None:
        if site == "same-origin":
            return None
        why = "it names no Origin"
    elif origin.strip().lower() == public_origin:
        return None
    else:
        why = f"its Origin is not the app's own ({public_origin})"
    return PermissionDenied(
        f"a write with a sign-in session is refused: {why}; nothing was changed", reason="CROSS_ORIGIN_WRITE"
    )


# --- where a browser may be sent back to -----------------------------------------------------------------


def same_origin_path(value: str, public_origin: str) -> str | None:
    """`value` as a path on the app's own origin (`/page?q=1#top`), or None when it could lead anywhere else.

    A path must start with one `/`: `//host` and `/\\host` are other hosts to a browser, and browsers read a
    backslash as a slash and drop tabs and newlines, so none of those (nor any control character) is taken.
    An absolute URL is taken only on the app's own origin, and reduced to its path.
    """
    if not value or len(value) > MAX_RETURN_TO_CHARS or any(ord(c) < 0x21 or c in "\\\x7f" for c in value):
        return None
    if not value.startswith("/"):
        try:
            parts = urlsplit(value)
        except ValueError:
            return None
        if f"{parts.scheme}://{parts.netloc}".lower() != public_origin:
            return None
        value = value[len(parts.scheme) + 3 + len(parts.netloc) :] or "/"
        if not value.startswith("/"):
            return None
    if value.startswith("//"):
        return None
    return value


# --- sessions --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """One session as stored (the hash names it; the secret is not kept)."""

    sha256: str
    # The GitHub user as signed in; `is_owner` is decided on each call from SPARK_OWNERS.
    user: User
    created_at: str
    expires_at_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "user": {
                    "id": self.user.id,
                    "login": self.user.login,
                    "email": self.user.email,
                    "avatar_url": self.user.avatar_url,
                },
                "created_at": self.created_at,
                "expires_at_ms": self.expires_at_ms,
            }
        )

    @classmethod
    def from_json(cls, sha256: str, raw: bytes) -> Session:
        data = orjson.loads(raw)
        return cls(sha256, User.from_json(data["user"]), data["created_at"], int(data["expires_at_ms"]))

    @property
    def expires_at(self) -> str:
        return _now_iso(self.expires_at_ms / 1000)


class SessionBook:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(self, user: User, ttl_s: int) -> str:
        """A new session for `user` that lasts `ttl_s`; returns its secret, which is stored nowhere."""
        secret = new_secret()
        now = self._clock()
        session = Session(digest(secret), user, _now_iso(now), int((now + ttl_s) * 1000))
        ttl_ms = ttl_s * 1000
        writes: list[Mutation] = [
            Set(SESSIONS, session.sha256, session.to_json(), ttl_ms),
            Set(SESSION_USERS, f"{user.id}|{session.sha256}", b"", ttl_ms),
            Set(LOGINS, user.login.lower(), user.id.encode(), ttl_ms),
        ]
        # 256 random bits do not collide; the check keeps it so even if they did.
        result = await self._store.commit([Check(SESSIONS, session.sha256, None)], writes)
        if not result.ok:
            raise RuntimeError("a new session's hash is already stored")
        return secret

    async def find(self, secrets_given: Iterable[str]) -> Session | None:
        """The live session of the first secret (of the cookies a request carries) that is one; None if none is."""
        for secret in secrets_given:
            if not looks_like_secret(secret):
                continue
            sha256 = digest(secret)
            entry = await self._store.get(SESSIONS, sha256)
            if entry is None:
                continue
            session = Session.from_json(sha256, entry.value)
            if session.expires_at_ms > self._clock() * 1000:
                return session
        return None

    async def end(self, session: Session) -> None:
        await self._store.commit(
            [], [Delete(SESSIONS, session.sha256), Delete(SESSION_USERS, f"{session.user.id}|{session.sha256}")]
        )

    async def revoke(self, user: str) -> tuple[str | None, int]:
        """Ends every session of a user named by GitHub id or login (any case); the user id found (None when
        the login signed in never, or not lately) and how many sessions ended."""
        user_id: str | None = user if user.isdigit() else None
        if user_id is None:
            entry = await self._store.get(LOGINS, user.lower())
            if entry is None:
                return None, 0
            user_id = entry.value.decode()
        ended = 0
        while True:
            index = await self._store.list(SESSION_USERS, prefix=f"{user_id}|", limit=PAGE)
            if not index:
                return user_id, ended
            deletes: list[Mutation] = []
            for item in index:
                deletes += [Delete(SESSION_USERS, item.key), Delete(SESSIONS, item.key.rpartition("|")[2])]
            await self._store.commit([], deletes)
            ended += len(index)

    async def list(self) -> list[Session]:
        """The live sessions (at most MAX_LISTED), the newest first."""
        sessions: list[Session] = []
        after: str | None = None
        while len(sessions) < MAX_LISTED:
            page = await self._store.list(SESSIONS, start_after=after, limit=PAGE)
            sessions += [Session.from_json(entry.key, entry.value) for entry in page]
            if len(page) < PAGE:
                break
            after = page[-1].key
        now_ms = self._clock() * 1000
        live = [s for s in sessions if s.expires_at_ms > now_ms]
        return sorted(live, key=lambda s: (s.created_at, s.sha256), reverse=True)


# --- the state of a sign-in ------------------------------------------------------------------------------


class SignInStates:
    """Each sign-in's `state`: made when it starts, taken once by its callback, gone after STATE_TTL_S."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def start(self, return_to: str) -> str:
        state = new_secret()
        await self._store.commit(
            [], [Set(STATES, digest(state), orjson.dumps({"return_to": return_to}), STATE_TTL_S * 1000)]
        )
        return state

    async def take(self, state: str) -> str | None:
        """The `return_to` of a live state, which is used up: a second callback with it finds nothing."""
        if not looks_like_secret(state):
            return None
        key = digest(state)
        entry = await self._store.get(STATES, key)
        if entry is None:
            return None
        # Of two callbacks racing with one state, on any number of instances, one wins.
        taken = await self._store.commit([Check(STATES, key, entry.versionstamp)], [Delete(STATES, key)])
        if not taken.ok:
            return None
        return str(orjson.loads(entry.value)["return_to"])
