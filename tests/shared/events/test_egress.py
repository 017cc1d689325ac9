"""The egress policy of webhooks, on its own (no database, no network): every way of writing an address the
desk must not call, in production and in local mode, ports, and a request pinned to the checked address."""

from __future__ import annotations

import ipaddress

import pytest

from shared.events import egress
from shared.events.egress import EgressRefused, address_refusal, embedded_ipv4

# (address, refusal in production, refusal in local/test mode)
FORMS = [
    # the forms reported as accepted in production
    ("64:ff9b::a9fe:a9fe", "metadata", "metadata"),  # NAT64 of 169.254.169.254
    ("64:ff9b::7f00:1", "loopback", None),  # NAT64 of 127.0.0.1
    ("2002:7f00:1::", "loopback", None),  # 6to4 of 127.0.0.1
    ("::127.0.0.1", "loopback", None),  # IPv4-compatible
    # the other embeddings
    ("::ffff:127.0.0.1", "loopback", None),  # IPv4-mapped
    ("::ffff:169.254.169.254", "metadata", "metadata"),
    ("::ffff:10.1.2.3", "private", None),
    ("::a9fe:a9fe", "metadata", "metadata"),
    ("64:ff9b::a00:1", "private", None),  # NAT64 of 10.0.0.1
    ("64:ff9b::6440:1", "private", None),  # NAT64 of 100.64.0.1 (CGNAT)
    ("64:ff9b:1:a9fe:a9:fe00::", "metadata", "metadata"),  # NAT64 local-use /48 of 169.254.169.254
    ("64:ff9b:1:5db8:d8:2200::", "private", None),  # local-use prefix: private whatever it embeds
    ("2002:a9fe:a9fe::1", "metadata", "metadata"),  # 6to4 of 169.254.169.254
    ("2002:c0a8:101::1", "private", None),  # 6to4 of 192.168.1.1
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback", None),  # Teredo, client 127.0.0.1 (obfuscated)
    ("2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2", "metadata", "metadata"),  # Teredo, server 169.254.169.254
    ("2a00:1450::200:5efe:7f00:1", "loopback", None),  # ISATAP interface id carrying 127.0.0.1
    ("2a00:1450::5efe:a9fe:a9fe", "metadata", "metadata"),
    # IPv6 ranges of their own
    ("::", "unspecified", "unspecified"),
    ("::1", "loopback", None),
    ("fe80::1", "link_local", "link_local"),
    ("fd00:ec2::254", "metadata", "metadata"),
    ("fc00::1", "private", None),  # ULA
    ("fd12:3456::1", "private", None),
    ("fec0::1", "private", None),  # site-local
    ("ff02::1", "multicast", "multicast"),
    ("2001:db8::1", "private", None),  # documentation
    ("100::1", "private", None),  # discard-only
    ("4000::1", "private", None),  # not handed out for public use
    # IPv4
    ("127.0.0.1", "loopback", None),
    ("127.8.9.10", "loopback", None),
    ("169.254.169.254", "metadata", "metadata"),
    ("169.254.1.1", "link_local", "link_local"),
    ("0.0.0.0", "unspecified", "unspecified"),
    ("224.0.0.1", "multicast", "multicast"),
    ("10.0.0.1", "private", None),
    ("172.16.0.1", "private", None),
    ("192.168.1.1", "private", None),
    ("100.64.0.1", "private", None),  # CGNAT
    ("198.18.0.1", "private", None),  # benchmarking
    ("192.0.2.1", "private", None),  # documentation
    ("240.0.0.1", "private", None),  # reserved
    ("255.255.255.255", "private", None),
    # public: accepted everywhere
    ("93.184.216.34", None, None),
    ("2a00:1450:4002:80a::200e", None, None),
    ("64:ff9b::5db8:d822", None, None),  # NAT64 (DNS64) of a public address
    ("2002:5db8:d822::1", None, None),  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "production", "local"), FORMS)
def test_every_form_of_a_forbidden_address_is_refused(address, production, local):
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, production=True) == production
    assert address_refusal(ip, production=False) == local


def test_embedded_addresses_are_read_from_every_transition_mechanism():
    def v4(a: str) -> list[str]:
        return [str(x) for x in embedded_ipv4(ipaddress.IPv6Address(a))]

    assert v4("::ffff:1.2.3.4") == ["1.2.3.4"]
    assert v4("::1.2.3.4") == ["1.2.3.4"]
    assert v4("64:ff9b::102:304") == ["1.2.3.4"]
    assert v4("64:ff9b:1:102:3:400::") == ["1.2.3.4"]
    assert v4("2002:102:304::") == ["1.2.3.4"]
    assert v4("2001:0:4136:e378:8000:63bf:80ff:fffe") == ["65.54.227.120", "127.0.0.1"]
    assert v4("2a00::5efe:102:304") == ["1.2.3.4"]
    assert v4("2a00:1450:4002:80a::200e") == []


@pytest.mark.parametrize(
    ("url", "allowed", "refused"),
    [
        ("https://93.184.216.34/hook", (), False),
        ("https://93.184.216.34:443/hook", (), False),
        ("https://93.184.216.34:22/hook", (), True),
        ("https://93.184.216.34:5432/hook", (), True),
        ("https://93.184.216.34:8443/hook", (), True),
        ("https://93.184.216.34:8443/hook", (8443,), False),
    ],
)
async def test_production_allows_port_443_and_the_ports_an_officer_allowed(url, allowed, refused):
    if refused:
        with pytest.raises(EgressRefused) as e:
            await egress.check_url(url, production=True, allowed_ports=allowed)
        assert e.value.code == "port_not_allowed"
    else:
        await egress.check_url(url, production=True, allowed_ports=allowed)


async def test_local_mode_keeps_http_loopback_and_any_port():
    await egress.check_url("http://127.0.0.1:8765/hook", production=False)
    with pytest.raises(EgressRefused) as e:
        await egress.check_url("http://127.0.0.1:8765/hook", production=True)
    assert e.value.code == "url_invalid"  # http
    with pytest.raises(EgressRefused) as e:
        await egress.check_url("https://127.0.0.1/hook", production=True)
    assert e.value.code == "address_forbidden"


async def test_a_name_is_refused_when_any_of_its_addresses_is_forbidden():
    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.partner.example", 443)
        return ["93.184.216.34", "64:ff9b::7f00:1"]

    with pytest.raises(EgressRefused) as e:
        await egress.check_url("https://Hooks.Partner.Example./hook", production=True, resolver=resolver)
    assert e.value.code == "address_forbidden" and "64:ff9b::7f00:1" in e.value.message_en


async def test_a_name_that_does_not_resolve_is_refused():
    async def resolver(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(EgressRefused) as e:
        await egress.pin("https://nowhere.example/hook", production=True, resolver=resolver)
    assert e.value.code == "dns_failed"


async def test_the_request_goes_to_the_checked_address_and_presents_the_name():
    async def resolver(host: str, port: int) -> list[str]:
        return ["2a00:1450:4002:80a::200e", "93.184.216.34"]

    target = await egress.pin("https://hooks.partner.example/desk/events?x=1", production=True, resolver=resolver)
    assert target.url == "https://[2a00:1450:4002:80a::200e]/desk/events?x=1"
    assert target.headers == {"host": "hooks.partner.example", "connection": "close"}
    assert target.extensions == {"sni_hostname": "hooks.partner.example"}

    target = await egress.pin(
        "http://receiver.test:8123/hook", production=False, resolver=lambda h, p: _const(["127.0.0.1"])
    )
    assert target.url == "http://127.0.0.1:8123/hook" and target.headers["host"] == "receiver.test:8123"
    assert target.extensions == {}


async def _const(value: list[str]) -> list[str]:
    return value


def test_a_host_has_one_spelling():
    assert egress.parse_url("https://Hooks.Partner.Example./x", production=True).host == "hooks.partner.example"
    assert egress.parse_url("https://[2A00:1450:0:0::1]:8443/x", production=True).host == "2a00:1450::1"
