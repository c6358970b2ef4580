"""Sign-in's pure parts: its settings, cookies, same-origin paths, the Origin check of cookie writes, which
methods are the app's, GitHub's authorization URL, and what the launcher's banner says of it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from launcher.banner import Banner, build_banner
from launcher.config import read_config as read_launcher_config
from services.access.config import (
    GitHubOAuth,
    read_anonymous_app_calls,
    read_config,
    read_gate_config,
    read_sign_in,
)
from services.access.methods import method_policies
from services.access.oauth import GitHub
from services.access.sessions import (
    clear_cookie,
    cookie_values,
    digest,
    looks_like_secret,
    new_secret,
    same_origin_path,
    set_cookie,
    write_refusal,
)
from services.common.config import ConfigError, EnvReader
from services.common.descriptors import default_descriptor_path, load_pool

ORIGIN = "https://app.example"
SIGN_IN = {
    "SPARK_AUTH": "github",
    "SPARK_AUTH_GITHUB_CLIENT_ID": "Iv1.abc",
    "SPARK_AUTH_GITHUB_CLIENT_SECRET": "s3cret-s3cret",
    "SPARK_PUBLIC_URL": "https://App.Example/",
}


def gate(env: dict[str, str]):  # type: ignore[no-untyped-def]
    reader = EnvReader(env)
    config = read_gate_config(reader)
    reader.finish()
    return config


def problems(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        gate(env)
    return str(caught.value)


# --- settings -----------------------------------------------------------------------------------------------


def test_sign_in_is_off_by_default_and_development_mode_stays_as_it_was() -> None:
    config = gate({})
    assert config.sign_in is None
    assert read_config({}).github is None


def test_sign_in_settings_with_their_defaults() -> None:
    config = gate({**SIGN_IN, "SPARK_OWNERS": "OctoCat, hubot ,"})
    assert config.sign_in is not None
    assert config.sign_in.app_access == "public"
    assert config.sign_in.owners == {"octocat", "hubot"}
    assert config.sign_in.public_origin == ORIGIN
    assert config.sign_in.app == "default"
    assert config.sign_in.is_owner("OCTOCAT") and not config.sign_in.is_owner("octo")
    github = read_config(SIGN_IN).github
    assert github == GitHubOAuth(
        client_id="Iv1.abc",
        client_secret="s3cret-s3cret",
        url="https://github.com",
        api_url="https://api.github.com",
        redirect_uri=f"{ORIGIN}/_spark/auth/callback",
        session_ttl_s=7 * 86400,
        secure_cookies=True,
    )
    assert "s3cret" not in repr(github)


def test_the_public_url_defaults_to_the_edge_on_loopback() -> None:
    env = {k: v for k, v in SIGN_IN.items() if k != "SPARK_PUBLIC_URL"}
    assert gate({**env, "SPARK_EDGE_PORT": "9000"}).sign_in.public_origin == "http://127.0.0.1:9000"  # type: ignore[union-attr]
    github = read_config({**env, "SPARK_EDGE_PORT": "9000"}).github
    assert github is not None and not github.secure_cookies


def test_sign_in_without_the_oauth_app_or_owners_refuses_to_start_saying_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        read_config({"SPARK_AUTH": "github", "SPARK_APP_ACCESS": "owners"})
    message = str(caught.value)
    assert "SPARK_AUTH_GITHUB_CLIENT_ID" in message
    assert "SPARK_AUTH_GITHUB_CLIENT_SECRET" in message
    assert "SPARK_OWNERS names nobody" in message
    assert "callback URL <SPARK_PUBLIC_URL>/_spark/auth/callback" in message


def test_only_the_access_service_needs_the_oauth_apps_credentials() -> None:
    config = gate({"SPARK_AUTH": "github"})
    assert config.sign_in is not None
    assert "secret" not in repr(config).lower()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SPARK_AUTH": "gitlab"}, "SPARK_AUTH='gitlab'"),
        ({"SPARK_APP_ACCESS": "everyone"}, "SPARK_APP_ACCESS='everyone'"),
        ({"SPARK_PUBLIC_URL": "https://app.example/sub"}, "must be the origin"),
        ({"SPARK_PUBLIC_URL": "ftp://app.example"}, "must be the origin"),
        ({"SPARK_PUBLIC_URL": "https://user@app.example"}, "must be the origin"),
        ({"SPARK_OWNERS": "octocat,not a login,-x"}, "'-x', 'not a login'"),
    ],
)
def test_invalid_sign_in_settings_are_named(env: dict[str, str], says: str) -> None:
    assert says in problems({**SIGN_IN, **env})


def test_app_access_without_sign_in_is_a_mistake_not_silence() -> None:
    assert "needs SPARK_AUTH=github" in problems({"SPARK_APP_ACCESS": "signed-in"})


def test_the_session_lifetime_is_bounded() -> None:
    with pytest.raises(ConfigError, match="SPARK_SESSION_TTL_S"):
        read_config({**SIGN_IN, "SPARK_SESSION_TTL_S": "10"})
    assert read_config({**SIGN_IN, "SPARK_SESSION_TTL_S": "3600"}).github.session_ttl_s == 3600  # type: ignore[union-attr]


def test_the_edge_lets_anonymous_app_calls_through_only_for_a_public_app_with_sign_in() -> None:
    assert not read_anonymous_app_calls(EnvReader({}))
    assert read_anonymous_app_calls(EnvReader(SIGN_IN))
    assert not read_anonymous_app_calls(EnvReader({**SIGN_IN, "SPARK_APP_ACCESS": "signed-in"}))


# --- secrets and cookies -------------------------------------------------------------------------------------


def test_session_secrets_are_256_random_bits_kept_as_sha256() -> None:
    secret = new_secret()
    assert looks_like_secret(secret) and len(secret) == 43 and secret != new_secret()
    assert digest(secret) == hashlib.sha256(secret.encode()).hexdigest()
    for other in ("", "a" * 42, "a" * 44, "a" * 42 + "!", " " + secret[1:]):
        assert not looks_like_secret(other)


def test_cookies_are_read_from_every_cookie_header_by_name() -> None:
    headers = ["theme=dark; spark_session=abc", 'spark_session="def"; x=1', "spark_session2=no; =; junk"]
    assert cookie_values(headers, "spark_session") == ["abc", "def"]
    assert cookie_values(["a=1"] + ["spark_session=x"] * 10, "spark_session") == ["x", "x", "x"]


def test_cookie_attributes() -> None:
    assert set_cookie("spark_session", "v", path="/", max_age_s=60, secure=True) == (
        "spark_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
    )
    assert clear_cookie("spark_session", path="/", secure=False) == (
        "spark_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    )


# --- where a browser may go back to ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/a/b?c=d#e", "/a/b?c=d#e"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        (f"{ORIGIN}/x?y=1", "/x?y=1"),
        ("HTTPS://APP.EXAMPLE/x", "/x"),
        (ORIGIN, "/"),
        ("//evil.example", None),
        ("///evil.example", None),
        ("/\\evil.example", None),
        ("\\/evil.example", None),
        ("https://evil.example/", None),
        ("https://app.example.evil.example/", None),
        ("https://app.example:444/", None),
        ("http://app.example/", None),
        ("https://app.example@evil.example/", None),
        (f"{ORIGIN}//evil.example", None),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("relative/path", None),
        ("/a\nb", None),
        ("/a\tb", None),
        ("/a b", None),
        ("/a\x7fb", None),
        ("", None),
        ("/" + "a" * 2048, None),
    ],
)
def test_same_origin_paths_only(value: str, expected: str | None) -> None:
    assert same_origin_path(value, ORIGIN) == expected


# --- the Origin check --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"x-spark-original-method": "GET", "origin": "https://evil.example"}, False),
        ({"x-spark-original-method": "HEAD", "sec-fetch-site": "cross-site"}, False),
        ({"x-spark-original-method": "POST", "origin": ORIGIN}, False),
        ({"x-spark-original-method": "PUT", "origin": "HTTPS://APP.EXAMPLE"}, False),
        ({"x-spark-original-method": "DELETE", "sec-fetch-site": "same-origin"}, False),
        ({"x-spark-original-method": "POST", "origin": "https://evil.example"}, True),
        ({"x-spark-original-method": "POST", "origin": "null"}, True),
        ({"x-spark-original-method": "POST", "origin": f"{ORIGIN}:443"}, True),
        ({"x-spark-original-method": "POST", "origin": ORIGIN, "sec-fetch-site": "cross-site"}, True),
        ({"x-spark-original-method": "POST", "sec-fetch-site": "same-site"}, True),
        ({"x-spark-original-method": "POST"}, True),
        # Not known to be a read (a native gRPC call has no HTTP method): a write.
        ({"origin": "https://evil.example"}, True),
    ],
)
def test_cookie_writes_need_the_apps_own_origin(headers: dict[str, str], refused: bool) -> None:
    refusal = write_refusal(headers, ORIGIN)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.reason == "CROSS_ORIGIN_WRITE"


# --- the app's methods, and GitHub's authorization page ----------------------------------------------------------


def test_the_app_methods_are_the_spark_runtimes_and_sign_in_is_not_one() -> None:
    pool, _ = load_pool(default_descriptor_path())
    policies = method_policies(["spark.access.v1.AccessService", "spark.kv.v1.KvService"], pool)
    app = {name.rpartition("/")[2] for name, policy in policies.items() if policy.app}
    assert {"GetUser", "RecordLoad", "GetSparkValue", "SetSparkValue", "ListSparkCollection"} <= app
    assert not app & {"StartSignIn", "FinishSignIn", "SignOut", "OpenPage", "ListSessions", "GetEntry"}
    public = {name.rpartition("/")[2] for name, policy in policies.items() if policy.public}
    assert {"StartSignIn", "FinishSignIn", "SignOut", "OpenPage"} <= public
    admin = {name.rpartition("/")[2] for name, policy in policies.items() if policy.admin}
    assert {"ListSessions", "RevokeSessions"} <= admin


def test_the_authorization_url_carries_the_oauth_apps_parameters_and_never_the_secret() -> None:
    github = read_config({**SIGN_IN, "SPARK_AUTH_GITHUB_URL": "https://ghe.example/"}).github
    assert github is not None
    url = urlsplit(GitHub(github).authorize_url("st4te"))
    assert (url.scheme, url.netloc, url.path) == ("https", "ghe.example", "/login/oauth/authorize")
    assert parse_qs(url.query) == {
        "client_id": ["Iv1.abc"],
        "redirect_uri": [f"{ORIGIN}/_spark/auth/callback"],
        "scope": ["read:user user:email"],
        "state": ["st4te"],
    }
    assert "s3cret" not in url.geturl()


# --- the launcher's banner ------------------------------------------------------------------------------------


def banner(env: dict[str, str]) -> Banner:
    return build_banner(read_launcher_config(env), read_sign_in(env))


def test_a_hosted_app_without_sign_in_in_development_mode_says_every_visitor_is_its_owner(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>", encoding="utf-8")
    lines = banner({"SPARK_APP_DIR": str(tmp_path), "SPARK_DATA_DIR": str(tmp_path / "data")}).lines
    assert lines[0] == "access: development (every caller is the owner, no API key needed)"
    assert lines[1].startswith("sign-in: off (SPARK_AUTH unset): EVERY VISITOR OF THE APP IS ITS OWNER")


def test_the_banner_says_who_may_use_the_app_with_sign_in_and_never_the_secret() -> None:
    shown = banner({**SIGN_IN, "SPARK_APP_ACCESS": "owners", "SPARK_OWNERS": "octocat,hubot"})
    assert shown.lines[0].startswith("access: development with sign-in (no one is everyone's owner")
    assert shown.lines[1] == (
        "sign-in: GitHub, callback https://app.example/_spark/auth/callback; app 'default' owners: only SPARK_OWNERS "
        "may use the app; owners: hubot, octocat"
    )
    assert shown.fields["sign_in"] == "owners"
    assert shown.warning is None
    assert "s3cret" not in repr(shown)


def test_sign_in_over_plain_http_beyond_loopback_is_a_warning_and_on_loopback_is_not() -> None:
    warned = banner({**SIGN_IN, "SPARK_PUBLIC_URL": "http://app.example"})
    assert warned.warning is not None and warned.warning.startswith("SIGN-IN OVER PLAIN HTTP")
    assert banner({**SIGN_IN, "SPARK_PUBLIC_URL": "http://127.0.0.1:8080"}).warning is None
    # Development mode with sign-in beyond loopback makes no one everyone's owner: no development warning.
    assert banner({**SIGN_IN, "SPARK_HOST": "0.0.0.0"}).warning is None
