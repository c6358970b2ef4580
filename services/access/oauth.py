"""GitHub's OAuth web application flow, as an OAuth App speaks it.

1. The browser goes to `{GITHUB_URL}/login/oauth/authorize` with `client_id`, `redirect_uri`, `scope` and
   the sign-in's single-use `state`.
2. GitHub sends it back to `redirect_uri` with `code` and `state` (or `error=access_denied` and an
   `error_description` when the person said no).
3. The code is exchanged at `{GITHUB_URL}/login/oauth/access_token` (a form POST with `client_id`,
   `client_secret`, `code`, `redirect_uri` and `Accept: application/json`); GitHub answers 200 with
   `{"access_token", "token_type", "scope"}`, or 200 with `{"error": "bad_verification_code", ...}`.
4. `{API_URL}/user` with `Authorization: Bearer <token>` names the person; `{API_URL}/user/emails` (the
   `user:email` scope) gives the primary address when the profile shows none.

The client secret goes to the token endpoint only, the token to the API only, and neither is logged or
kept: the session (services/access/sessions.py) is the suite's own.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from services.access.config import MAX_LOGIN_CHARS, GitHubOAuth
from services.access.users import MAX_EMAIL_CHARS, MAX_URL_CHARS, User
from services.common.errors import DomainError, InvalidArgument, Unavailable

logger = logging.getLogger(__name__)

# The profile and the primary email address; nothing that reads or writes anything else.
SCOPE = "read:user user:email"
TIMEOUT_S = 10.0
# No answer of these endpoints comes near this; a bigger one is not GitHub's.
MAX_ANSWER_BYTES = 1024 * 1024
API_VERSION = "2022-11-28"
USER_AGENT = "spark-services-sign-in"
_LOGIN = re.compile(rf"[A-Za-z0-9](?:-?[A-Za-z0-9]){{0,{MAX_LOGIN_CHARS - 1}}}")
# What GitHub's token endpoint says about a code it does not take, as the person should hear it.
_CODE_ERRORS = {
    "bad_verification_code": "the sign-in code is incorrect or expired: sign in again",
}
# What the callback's `error` means, for those GitHub documents.
CALLBACK_ERRORS = {
    "access_denied": "GitHub sign-in was cancelled: the app was not given access to your GitHub account",
    "redirect_uri_mismatch": "the OAuth App's callback URL is not this suite's <SPARK_PUBLIC_URL>/_spark/auth/callback",
    "application_suspended": "the OAuth App this suite signs in with is suspended on GitHub",
}


@dataclass(frozen=True, slots=True)
class GitHubUser:
    id: int
    login: str
    email: str
    avatar_url: str

    def to_user(self) -> User:
        return User(id=str(self.id), login=self.login, email=self.email, avatar_url=self.avatar_url)


def _unavailable(what: str) -> Unavailable:
    return Unavailable(
        f"GitHub did not answer the sign-in ({what}); try again", reason="GITHUB_UNAVAILABLE", retry_after_s=5.0
    )


def _misconfigured(detail: str) -> Unavailable:
    return Unavailable(
        f"sign-in with GitHub is misconfigured on this suite ({detail}); the operator must check the OAuth App "
        "settings (SPARK_AUTH_GITHUB_*)",
        reason="SIGN_IN_MISCONFIGURED",
    )


class GitHub:
    def __init__(self, config: GitHubOAuth) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def authorize_url(self, state: str) -> str:
        query = urlencode(
            {
                "client_id": self._config.client_id,
                "redirect_uri": self._config.redirect_uri,
                "scope": SCOPE,
                "state": state,
            }
        )
        return f"{self._config.url}/login/oauth/authorize?{query}"

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        """One request; its status and JSON. Unreachable, slow, oversized or unreadable is Unavailable."""
        try:
            async with self._open().request(method, url, allow_redirects=False, **kwargs) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise _unavailable(f"{what}: the answer is too large")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning("GitHub %s failed: %s", what, type(error).__name__)
            raise _unavailable(what) from None
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError:
            logger.warning("GitHub %s answered %s with no JSON", what, status)
            raise _unavailable(f"{what}: HTTP {status}") from None

    async def exchange(self, code: str) -> str:
        """The user access token for a callback's code. Raises InvalidArgument for a code GitHub does not
        take (used, expired or made up), Unavailable when GitHub cannot be asked or refuses the OAuth App."""
        status, answer = await self._call(
            "POST",
            f"{self._config.url}/login/oauth/access_token",
            "token exchange",
            data={
                "client_id": self._config.client_id,
                "client_secret": self._config.client_secret,
                "code": code,
                "redirect_uri": self._config.redirect_uri,
            },
            headers={"Accept": "application/json"},
        )
        if not isinstance(answer, dict):
            raise _unavailable(f"token exchange: HTTP {status}")
        error = answer.get("error")
        if isinstance(error, str):
            if error in _CODE_ERRORS:
                raise InvalidArgument(_CODE_ERRORS[error], reason="CODE_INVALID", metadata={"error": error})
            # incorrect_client_credentials, redirect_uri_mismatch, ...: the operator's to fix, never the visitor's.
            logger.error("GitHub refused the token exchange: %s", error[:64])
            raise _misconfigured(f"GitHub answered {error[:64]}")
        token = answer.get("access_token")
        if status != 200 or not isinstance(token, str) or not token:
            raise _unavailable(f"token exchange: HTTP {status}")
        return token

    async def user(self, token: str) -> GitHubUser:
        """The signed-in person: `/user`, and `/user/emails` for the primary verified address when the profile
        shows none. Raises Unavailable when GitHub cannot be asked or answers what is no user."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        status, profile = await self._call("GET", f"{self._config.api_url}/user", "user profile", headers=headers)
        if status != 200 or not isinstance(profile, dict):
            raise _unavailable(f"user profile: HTTP {status}")
        user_id, login = profile.get("id"), profile.get("login")
        if not (isinstance(user_id, int) and not isinstance(user_id, bool) and user_id > 0):
            raise _unavailable("user profile: no id")
        if not (isinstance(login, str) and _LOGIN.fullmatch(login)):
            raise _unavailable("user profile: no login")
        email = _email(profile.get("email"))
        if not email:
            email = await self._primary_email(headers)
        avatar = profile.get("avatar_url")
        if not (
            isinstance(avatar, str) and avatar.startswith(("https://", "http://")) and len(avatar) <= MAX_URL_CHARS
        ):
            avatar = ""
        return GitHubUser(user_id, login, email, avatar)

    async def _primary_email(self, headers: dict[str, str]) -> str:
        """The primary verified address, or "" (the scope was not granted, or there is none)."""
        try:
            status, emails = await self._call(
                "GET", f"{self._config.api_url}/user/emails", "user emails", headers=headers
            )
        except DomainError:
            return ""
        if status != 200 or not isinstance(emails, list):
            return ""
        for item in emails:
            if isinstance(item, dict) and item.get("primary") is True and item.get("verified") is True:
                return _email(item.get("email"))
        return ""


def _email(value: object) -> str:
    if isinstance(value, str) and "@" in value and len(value) <= MAX_EMAIL_CHARS:
        return value
    return ""
