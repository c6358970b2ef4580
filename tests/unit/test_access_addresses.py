"""The client's address behind trusted proxies: X-Forwarded-For believed only as far as the proxies are trusted."""

from __future__ import annotations

import pytest

from services.access.addresses import TrustedProxies, parse_networks
from services.access.config import read_config
from services.common.config import ConfigError

# What the edge appends to X-Forwarded-For before the check (its peer, or its own address for a loopback peer).
EDGE = "192.0.2.2"
PROXIES = TrustedProxies(parse_networks("10.0.0.0/8, 2001:db8:1::/48, 192.0.2.50")[0])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # A client straight at the edge: what it writes in X-Forwarded-For changes nothing.
        ("198.51.100.7", f"203.0.113.9,{EDGE}", "198.51.100.7"),
        ("198.51.100.7", None, "198.51.100.7"),
        # Through a trusted proxy: the address the proxy appended, not what the client wrote left of it.
        ("10.1.2.3", f"203.0.113.9,{EDGE}", "203.0.113.9"),
        ("10.1.2.3", f"6.6.6.6, 7.7.7.7,203.0.113.9,{EDGE}", "203.0.113.9"),
        # Through two trusted tiers (a CDN, then a load balancer).
        ("10.1.2.3", f"6.6.6.6, 203.0.113.9, 192.0.2.50,{EDGE}", "203.0.113.9"),
        # Every hop trusted: the leftmost of them.
        ("10.1.2.3", f"10.9.9.9, 192.0.2.50,{EDGE}", "10.9.9.9"),
        # A trusted proxy that forwarded nothing (a health check), or wrote something unreadable: the proxy.
        ("10.1.2.3", EDGE, "10.1.2.3"),
        ("10.1.2.3", None, "10.1.2.3"),
        ("10.1.2.3", f"unknown,{EDGE}", "10.1.2.3"),
        ("10.1.2.3", f"203.0.113.9, unknown,{EDGE}", "10.1.2.3"),
        # The forms proxies write: with ports, IPv6 in brackets, IPv4-mapped IPv6.
        ("10.1.2.3", f"203.0.113.9:51234,{EDGE}", "203.0.113.9"),
        ("10.1.2.3", f"[2001:db8:2::7]:443,{EDGE}", "2001:db8:2::7"),
        ("2001:db8:1::5", f"2001:db8:2::7,{EDGE}", "2001:db8:2::7"),
        ("::ffff:10.1.2.3", f"::ffff:203.0.113.9,{EDGE}", "203.0.113.9"),
        ("::ffff:198.51.100.7", f"203.0.113.9,{EDGE}", "198.51.100.7"),
    ],
)
def test_the_client_is_what_the_trusted_hops_say_and_no_more(peer: str, forwarded_for: str | None, client: str) -> None:
    assert PROXIES.client(peer, forwarded_for) == client


def test_without_trusted_proxies_forwarded_for_never_changes_the_address() -> None:
    nobody = TrustedProxies()
    assert nobody.client("10.1.2.3", f"203.0.113.9,{EDGE}") == "10.1.2.3"
    assert nobody.client("127.0.0.1", f"203.0.113.9,{EDGE}") == "127.0.0.1"
    # A peer that is not an IP address (a Unix socket) stays as Envoy named it.
    assert PROXIES.client("/run/edge.sock", f"203.0.113.9,{EDGE}") == "/run/edge.sock"


def test_networks_parse_from_a_comma_separated_list_naming_what_is_not_one() -> None:
    networks, invalid = parse_networks(" 10.0.0.0/8 ,192.0.2.7,, ::1, 10.0.0.0/33, proxy.internal ")
    assert [str(n) for n in networks] == ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]
    assert invalid == ["10.0.0.0/33", "proxy.internal"]
    assert parse_networks("") == ((), [])


def test_the_setting_is_empty_by_default_and_refuses_entries_that_trust_no_proxy_or_everyone() -> None:
    assert read_config({}).gate.trusted_proxies == TrustedProxies()
    configured = read_config({"SPARK_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8:1::/48,192.0.2.50"}).gate.trusted_proxies
    assert configured == PROXIES
    with pytest.raises(ConfigError) as raised:
        read_config({"SPARK_TRUSTED_PROXIES": "10.0.0.0/8, lb.internal, ::/0"})
    not_an_address, everyone = raised.value.problems
    assert not_an_address.endswith("not 'lb.internal'")
    assert "trusts every address" in everyone
