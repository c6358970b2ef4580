"""The access service's parts on a real store (SQLite and Redis): keys, nonces, counters and the gate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import pytest

from services.access.config import DEVELOPMENT_USER, OPERATOR
from services.access.gate import Gate, GateSettings
from services.access.keys import KeyStore
from services.access.limiter import MAX_LEASE, Limiter, lease_size
from services.access.methods import MethodPolicy
from services.access.nonces import NonceBook
from services.access.proofs import AdminProofs
from services.access.users import User
from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.common.store import Store
from tests.integration.conftest import StoreFactory

ADMIN = "the-admin-token"
# Policies as the protos declare them (services/access/methods.py).
KV = MethodPolicy("/spark.kv.v1.KvService/GetEntry", "kv", admin=False, public=False)
KV_WRITE = MethodPolicy("/spark.kv.v1.KvService/SetEntry", "kv", admin=False, public=False)
HEALTH = MethodPolicy("/spark.meta.v1.MetaService/GetHealth", "public", admin=False, public=True)
KEYS_ROUTE = MethodPolicy("/spark.access.v1.AccessService/ListApiKeys", "admin", admin=True, public=False)
READ_PROMPT = MethodPolicy("/spark.prompts.v1.PromptsService/GetPrompt", "prompts", admin=False, public=False)
WRITE_PROMPT = MethodPolicy("/spark.prompts.v1.PromptsService/DeletePrompt", "prompts", admin=True, public=False)
ALICE = User("alice", "alice", "a@example.com", "", False)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_gate(
    store: Store,
    *,
    development: bool = False,
    admin_token: str | None = ADMIN,
    failures: int = 5,
    nonce_routes: Iterable[str] = (),
    clock: Clock | None = None,
) -> Gate:
    settings = GateSettings(development, DEVELOPMENT_USER, OPERATOR, admin_token, frozenset(nonce_routes), failures)
    # A fixed clock: no window may end in the middle of a test.
    limiter = Limiter(store, clock=clock or Clock(1_800_000_000.0))
    return Gate(
        settings, KeyStore(store, cache_s=0), NonceBook(store, ttl_s=300), limiter, AdminProofs(store, admin_token)
    )


async def refusal(
    gate: Gate, method: MethodPolicy, headers: Mapping[str, str], address: str = "192.0.2.7"
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await gate.admit(method, headers, address)
    return caught.value


# --- keys --------------------------------------------------------------------------------------------


async def test_a_key_identifies_its_user_until_it_is_revoked(store: Store) -> None:
    keys = KeyStore(store, cache_s=0)
    record, secret = await keys.create(ALICE, "laptop")
    assert secret.startswith(f"spk_{record.id}_")
    assert await keys.verify(secret) == ALICE
    assert await keys.user("alice") == ALICE
    listed = await keys.list()
    assert [k.id for k in listed] == [record.id]
    assert secret not in repr(listed) and record.sha256 != secret
    await keys.revoke(record.id)
    assert await keys.verify(secret) is None
    with pytest.raises(NotFound):
        await keys.revoke(record.id)


async def test_a_wrong_secret_for_a_real_key_id_and_malformed_keys_are_refused(store: Store) -> None:
    keys = KeyStore(store, cache_s=0)
    record, secret = await keys.create(ALICE, "")
    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for token in (forged, secret + "x", f"spk_{record.id}", "spk_", "Bearer " + secret, secret.upper()):
        assert await keys.verify(token) is None, token


async def test_another_instance_sees_a_revocation_within_its_cache_lifetime(store_factory: StoreFactory) -> None:
    clock = Clock(1000.0)
    first, second = KeyStore(store_factory(), cache_s=5), KeyStore(store_factory(), cache_s=5, clock=clock)
    record, secret = await first.create(ALICE, "")
    assert await second.verify(secret) == ALICE
    await first.revoke(record.id)
    assert await second.verify(secret) == ALICE  # cached for up to 5 s
    clock.now += 5.01
    assert await second.verify(secret) is None


async def test_a_key_for_an_existing_user_keeps_the_stored_profile_unless_asked_to_update_it(store: Store) -> None:
    keys = KeyStore(store, cache_s=0)
    first, first_secret = await keys.create(ALICE, "laptop")
    # Another key with only the login: for the user as stored.
    second, second_secret = await keys.create(User("alice", "alice"), "phone")
    assert second.user == ALICE and await keys.verify(second_secret) == ALICE
    # Another email (or avatar, or owner flag) is refused, naming the fields, and nothing is written.
    with pytest.raises(AlreadyExists) as refused:
        await keys.create(User("alice", "alice", "new@example.com", "https://img.example/a.png", True), "tablet")
    fields = ["user.email", "user.avatar_url", "user.is_owner"]
    assert refused.value.reason == "USER_EXISTS" and refused.value.metadata["fields"] == ",".join(fields)
    assert [v.field for v in refused.value.violations] == fields
    assert await keys.user("alice") == ALICE and len(await keys.list()) == 2
    # Asked for, the profile is replaced as given, and every key of the user lists the new one.
    moved = User("alice", "alice", "new@example.com", "", False)
    third, _ = await keys.create(moved, "tablet", update_user=True)
    assert third.user == moved and await keys.user("alice") == moved
    assert [k.user for k in await keys.list()] == [moved] * 3
    assert await keys.verify(first_secret) is not None and first.id in {k.id for k in await keys.list()}


async def test_two_first_keys_racing_for_one_new_user_never_overwrite_each_other(store_factory: StoreFactory) -> None:
    stores = [KeyStore(store_factory(), cache_s=0) for _ in range(2)]
    emails = ["one@example.com", "two@example.com"]
    outcomes = await asyncio.gather(
        *(keys.create(User("bob", "bob", email), "") for keys, email in zip(stores, emails, strict=True)),
        return_exceptions=True,
    )
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(made) == 1 and isinstance(next(o for o in outcomes if o not in made), AlreadyExists)
    assert await stores[0].user("bob") == made[0][0].user


# --- nonces ------------------------------------------------------------------------------------------


async def test_a_nonce_is_accepted_once_per_subject_even_when_two_instances_race(store_factory: StoreFactory) -> None:
    books = [NonceBook(store_factory(), ttl_s=300) for _ in range(2)]
    outcomes = await asyncio.gather(
        *(books[i % 2].accept("user:alice", "n-0123456789") for i in range(10)), return_exceptions=True
    )
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o is not None)
    await books[0].accept("user:bob", "n-0123456789")  # another caller's nonces are its own
    with pytest.raises(InvalidArgument):
        await books[0].accept("user:alice", "short")
    with pytest.raises(InvalidArgument):
        await books[0].accept("user:alice", "spaces are not allowed")


# --- counters ----------------------------------------------------------------------------------------


def test_leases_are_one_request_for_small_limits_and_bounded_for_large_ones() -> None:
    assert lease_size(1) == lease_size(120) == 1
    assert lease_size(1000) == 10
    assert lease_size(6000) == 60
    assert lease_size(10_000) == lease_size(10**9) == MAX_LEASE == 100


@pytest.mark.parametrize("limit", [7, 1000])
async def test_instances_sharing_a_store_never_admit_more_than_the_limit(
    store_factory: StoreFactory, limit: int
) -> None:
    limiters = [Limiter(store_factory(), clock=Clock(60_000.5)) for _ in range(3)]
    decisions = await asyncio.gather(*(limiters[i % 3].hit("kv|user:alice", limit, 60) for i in range(limit + 300)))
    admitted = sum(d.allowed for d in decisions)
    assert admitted <= limit
    # A lease an instance holds unused is lost to the others: at most one lease per instance.
    assert admitted >= limit - 3 * lease_size(limit)
    if lease_size(limit) == 1:
        assert admitted == limit


async def test_a_window_refuses_past_its_limit_and_the_next_window_starts_afresh(store: Store) -> None:
    clock = Clock(120.0)
    limiter = Limiter(store, clock=clock)
    first = [await limiter.hit("llm|user:alice", 3, 60) for _ in range(4)]
    assert [d.allowed for d in first] == [True, True, True, False]
    assert [d.remaining for d in first] == [2, 1, 0, 0]
    assert first[-1].reset_s == 60.0
    assert (await limiter.hit("llm|user:bob", 3, 60)).allowed  # buckets are independent
    clock.now = 179.5
    assert not (await limiter.hit("llm|user:alice", 3, 60)).allowed
    clock.now = 180.0
    assert (await limiter.hit("llm|user:alice", 3, 60)).allowed


# --- the gate ----------------------------------------------------------------------------------------


async def test_development_mode_serves_the_owner_and_still_checks_keys_of_ours(store: Store) -> None:
    gate = make_gate(store, development=True)
    admitted = await gate.admit(KV, {}, "192.0.2.7")
    assert admitted.user == DEVELOPMENT_USER and admitted.subject == "user:owner"
    # The OpenAI SDK insists on some key: one that is not ours is ignored.
    assert (await gate.admit(KV, {"authorization": "Bearer sk-anything"}, "192.0.2.7")).user == DEVELOPMENT_USER
    assert isinstance(await refusal(gate, KV, {"x-api-key": "spk_0000000000000000_" + "a" * 43}), Unauthenticated)
    _, secret = await KeyStore(store, cache_s=0).create(ALICE, "")
    assert (await gate.admit(KV, {"x-api-key": secret}, "192.0.2.7")).user == ALICE


async def test_with_keys_required_only_public_routes_admit_anonymous_callers(store: Store) -> None:
    gate = make_gate(store)
    missing = await refusal(gate, KV, {})
    assert isinstance(missing, Unauthenticated) and missing.reason == "API_KEY_MISSING"
    assert isinstance(await refusal(gate, KV, {"authorization": "Basic YTpi"}), Unauthenticated)
    anonymous = await gate.admit(HEALTH, {}, "192.0.2.7")
    assert anonymous.user is None and anonymous.subject == "address:192.0.2.7"
    _, secret = await KeyStore(store, cache_s=0).create(ALICE, "")
    for headers in (
        {"authorization": f"Bearer {secret}"},
        {"authorization": f"bearer  {secret} "},
        {"x-api-key": secret},
    ):
        assert (await gate.admit(KV, headers, "192.0.2.7")).subject == "user:alice"


async def test_admin_routes_need_the_token_and_are_closed_without_one(store: Store) -> None:
    gate = make_gate(store, development=True)
    assert (await refusal(gate, KEYS_ROUTE, {})).reason == "ADMIN_TOKEN_INVALID"
    assert (await refusal(gate, KEYS_ROUTE, {"x-admin-token": ADMIN + "x"})).reason == "ADMIN_TOKEN_INVALID"
    assert (await gate.admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, "192.0.2.7")).user == OPERATOR
    # Admin is per method: reading prompts is open, changing them is not.
    assert (await gate.admit(READ_PROMPT, {}, "192.0.2.7")).user == DEVELOPMENT_USER
    assert isinstance(await refusal(gate, WRITE_PROMPT, {}), Unauthenticated)
    # With keys required, the admin token alone is the operator (the first key is made that way); a key
    # sent with it still names its own user.
    keyed = make_gate(store)
    assert (await keyed.admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, "192.0.2.7")).subject == "user:admin"
    _, secret = await KeyStore(store, cache_s=0).create(ALICE, "")
    both = {"x-admin-token": ADMIN, "x-api-key": secret}
    assert (await keyed.admit(KEYS_ROUTE, both, "192.0.2.7")).user == ALICE
    assert isinstance(await refusal(keyed, WRITE_PROMPT, {"x-api-key": secret}), Unauthenticated)
    closed = make_gate(store, development=True, admin_token=None)
    denied = await refusal(closed, KEYS_ROUTE, {"x-admin-token": ADMIN})
    assert isinstance(denied, PermissionDenied) and denied.reason == "ADMIN_DISABLED"


async def test_nonces_are_checked_when_sent_and_demanded_where_configured(store: Store) -> None:
    # Demanded by route class ("admin") or by method name ("SetEntry").
    gate = make_gate(store, development=True, nonce_routes={"admin", "SetEntry"})
    await gate.admit(KV, {"x-nonce": "nonce-00000001"}, "192.0.2.7")
    assert isinstance(await refusal(gate, KV, {"x-nonce": "nonce-00000001"}), AlreadyExists)
    await gate.admit(KV, {}, "192.0.2.7")  # optional elsewhere
    required = await refusal(gate, KEYS_ROUTE, {"x-admin-token": ADMIN})
    assert isinstance(required, FailedPrecondition) and required.reason == "NONCE_REQUIRED"
    await gate.admit(KEYS_ROUTE, {"x-admin-token": ADMIN, "x-nonce": "nonce-00000002"}, "192.0.2.7")
    assert (await refusal(gate, KV_WRITE, {})).reason == "NONCE_REQUIRED"
    await gate.admit(KV_WRITE, {"x-nonce": "nonce-00000003"}, "192.0.2.7")


async def test_an_address_guessing_is_refused_until_the_window_ends_but_right_credentials_are_served(
    store: Store,
) -> None:
    """Behind one address (a NAT, a proxy) one client's failures must not lock out another's key, nor the
    operator's token; wrong ones go on counting and stay refused."""
    gate = make_gate(store, failures=3)
    _, secret = await KeyStore(store, cache_s=0).create(ALICE, "")
    # The operator has used the admin token from this address before the guessing starts.
    assert (await gate.admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, "192.0.2.7")).user == OPERATOR
    wrong = {"x-api-key": "spk_0000000000000000_" + "b" * 43}
    assert [type(await refusal(gate, KV, wrong)) for _ in range(4)] == [Unauthenticated] * 3 + [ResourceExhausted]
    locked = await refusal(gate, KV, {"authorization": "Bearer not-a-key"})
    assert isinstance(locked, ResourceExhausted) and locked.reason == "AUTH_FAILURES"
    assert locked.retry_after_s is not None and 0 < locked.retry_after_s <= 60
    assert (await refusal(gate, KEYS_ROUTE, {"x-admin-token": ADMIN + "x"})).reason == "AUTH_FAILURES"
    assert (await refusal(gate, KEYS_ROUTE, {})).reason == "AUTH_FAILURES"
    # The right key and the right admin token are served from the locked-out address.
    assert (await gate.admit(KV, {"x-api-key": secret}, "192.0.2.7")).user == ALICE
    assert (await gate.admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, "192.0.2.7")).user == OPERATOR
    both = {"x-api-key": secret, "x-admin-token": ADMIN}
    assert (await gate.admit(KEYS_ROUTE, both, "192.0.2.7")).user == ALICE
    # A right admin token with a wrong key is still a failure.
    assert (await refusal(gate, KEYS_ROUTE, {**wrong, "x-admin-token": ADMIN})).reason == "AUTH_FAILURES"
    assert (await refusal(gate, KV, wrong)).reason == "AUTH_FAILURES"
    # Another address is not affected.
    assert isinstance(await refusal(gate, KV, wrong, address="192.0.2.8"), Unauthenticated)


async def test_a_right_admin_token_guessed_during_a_lockout_looks_like_a_wrong_one(store: Store) -> None:
    """From an address that never used the admin token, a right guess while it is locked out gets the same
    429 as its wrong guesses (the lockout is no oracle), in every access process; the window's end or an
    address that used the token before are served."""
    clock = Clock(1_800_000_000.0)
    gates = [make_gate(store, failures=3, clock=clock) for _ in range(2)]
    operator, guesser = "192.0.2.7", "198.51.100.9"
    await gates[0].admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, operator)
    for attempt in range(3):
        await refusal(gates[attempt % 2], KEYS_ROUTE, {"x-admin-token": f"guess-{attempt}"}, address=guesser)
        await refusal(gates[attempt % 2], KEYS_ROUTE, {"x-admin-token": f"guess-{attempt}"}, address=operator)

    for gate in gates:
        right = await refusal(gate, KEYS_ROUTE, {"x-admin-token": ADMIN}, address=guesser)
        wrong = await refusal(gate, KEYS_ROUTE, {"x-admin-token": "guess-4"}, address=guesser)
        assert (type(right), right.reason, right.message) == (type(wrong), wrong.reason, wrong.message)
        assert right.reason == "AUTH_FAILURES"
        assert (await gate.admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, operator)).user == OPERATOR

    clock.now += 60
    assert (await gates[1].admit(KEYS_ROUTE, {"x-admin-token": ADMIN}, guesser)).user == OPERATOR
    # A new admin token starts with no proofs: the operator shows it first, outside a lockout.
    rotated = make_gate(store, failures=3, clock=clock, admin_token=ADMIN + "-rotated")
    for attempt in range(3):
        await refusal(rotated, KEYS_ROUTE, {"x-admin-token": f"guess-{attempt}"}, address=operator)
    locked = await refusal(rotated, KEYS_ROUTE, {"x-admin-token": ADMIN + "-rotated"}, address=operator)
    assert locked.reason == "AUTH_FAILURES"
