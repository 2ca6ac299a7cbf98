"""Which webhook targets the registry may call: public addresses, or what an admin allow-lists."""

from __future__ import annotations

import ipaddress

import pytest

from services.registry.adapters.outbound import (
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
    inward_kind,
    pinned,
)
from shared.settings import Settings

PUBLIC = "93.184.216.34"


def _policy(allowed: list[str] | None = None, dns: dict[str, list[str]] | None = None) -> OutboundPolicy:
    names = {"localhost": ["127.0.0.1", "::1"], "public.example": [PUBLIC], **(dns or {})}

    def resolver(host: str, _port: int) -> list[IPAddress]:
        if host not in names:
            raise OSError(f"unknown host {host}")
        return [ipaddress.ip_address(a) for a in names[host]]

    settings = Settings(
        registry_webhook_allowed_hosts=allowed or [],
        kafka_bootstrap="kafka.internal:9092",
        clickhouse_url="http://203.0.114.7:8123",  # a public address of this stack's own ClickHouse
    )
    return OutboundPolicy.from_settings(settings, resolver=resolver)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8123/?query=INSERT", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://127.1/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://[fd00::1]/hook", "private"),
        ("http://100.64.0.1/hook", "CGNAT"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://kafka.internal:9092/", "this Driftloop stack"),
        ("http://203.0.114.7:8123/", "this Driftloop stack"),
    ],
)
def test_inward_targets_are_refused_naming_the_setting(url: str, kind: str) -> None:
    dns = {"127.1": ["127.0.0.1"], "kafka.internal": ["203.0.114.9"]}
    with pytest.raises(OutboundRefused, match=kind) as refused:
        _policy(dns=dns).check(url)
    assert "DRIFTLOOP_REGISTRY_WEBHOOK_ALLOWED_HOSTS" in str(refused.value)


def test_a_name_is_refused_if_any_of_its_addresses_is_inward() -> None:
    with pytest.raises(OutboundRefused, match=r"mixed.example \(10.0.0.1\) is a private"):
        _policy(dns={"mixed.example": [PUBLIC, "10.0.0.1"]}).check("https://mixed.example/hook")


def test_public_targets_and_allow_listed_hosts_networks_pass_with_their_checked_addresses() -> None:
    policy = _policy(["localhost", "10.0.0.0/8", "::1"], dns={"hooks.internal": ["10.3.0.7"]})
    assert policy.check("https://public.example/hook") == [ipaddress.ip_address(PUBLIC)]
    assert policy.check("http://localhost:9/hook")[0] == ipaddress.ip_address("127.0.0.1")
    assert policy.check("http://hooks.internal/x") == [ipaddress.ip_address("10.3.0.7")]
    assert policy.check("http://[::1]/x") == [ipaddress.ip_address("::1")]
    with pytest.raises(OutboundRefused):
        policy.check("http://127.0.0.1/x")  # the name localhost was allowed, not its address


def test_an_unresolvable_host_is_an_os_error_and_a_bad_allow_list_entry_stops_start_up() -> None:
    with pytest.raises(OSError):
        _policy().check("http://nowhere.example/hook")
    with pytest.raises(ValueError, match="'http://x'"):
        _policy(["http://x"])


def test_delivery_connects_to_the_checked_address_with_the_original_host_and_tls_name() -> None:
    url, host, tls_name = pinned("https://user@hooks.example.com:8443/a?b=1", ipaddress.ip_address("::1"))
    assert (url, host, tls_name) == (
        "https://[::1]:8443/a?b=1",
        "hooks.example.com:8443",
        "hooks.example.com",
    )
    assert pinned("http://x.example/h", ipaddress.ip_address(PUBLIC))[0] == f"http://{PUBLIC}/h"


def test_public_addresses_are_not_inward() -> None:
    assert inward_kind(ipaddress.ip_address(PUBLIC)) is None
    assert inward_kind(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")) is None
