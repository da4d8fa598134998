"""Broker URL lists: parsing, the documented escaping, masking, failover order."""

from __future__ import annotations

import random
import urllib.parse
from collections import Counter

import pytest
from yarl import URL

from boson_shared.bus.amqp import AmqpTransport
from boson_shared.bus.broker_urls import failover_order, mask_url, parse_broker_urls
from boson_shared.errors import BrokerUnavailableError, ConfigError


def test_one_url_is_a_list_of_one() -> None:
    (node,) = parse_broker_urls("amqp://guest:guest@127.0.0.1:5672/")
    assert (node.host, node.port, node.password) == ("127.0.0.1", 5672, "guest")


def test_full_urls_and_short_entries() -> None:
    nodes = parse_broker_urls(
        "amqps://u:p@rabbit-0:5671/vh?heartbeat=10, rabbit-1 ,rabbit-2:5681,amqp://x:y@other/"
    )
    assert [(n.scheme, n.host, n.port) for n in nodes] == [
        ("amqps", "rabbit-0", 5671),
        ("amqps", "rabbit-1", 5671),
        ("amqps", "rabbit-2", 5681),
        ("amqp", "other", None),
    ]
    # A short entry takes the credentials, vhost and query of the first.
    assert nodes[1].user == "u"
    assert nodes[1].password == "p"
    assert nodes[1].path == "/vh"
    assert nodes[1].query["heartbeat"] == "10"


def test_a_short_entry_without_port_takes_the_scheme_default() -> None:
    nodes = parse_broker_urls("amqp://u:p@a/,b")
    assert nodes[1].port == 5672


def test_a_comma_in_a_password_is_percent_encoded() -> None:
    password = "se,cr@t:/%"
    quoted = urllib.parse.quote(password, safe="")
    nodes = parse_broker_urls(f"amqp://u:{quoted}@a:5672/,amqp://u:{quoted}@b:5673/,c:5674")
    assert [n.password for n in nodes] == [password] * 3
    assert [n.host for n in nodes] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "text",
    [
        "amqp://u:se,cret@a:5672/",  # unescaped comma: "cret@a:5672/" is no node
        "amqp://u:p@a/,,b",
        "amqp://u:p@a/,",
        "redis://u:p@a/",
        "amqp://u:p@a:99999/",
        "amqp://u:p@a/,b:0",
        "amqp://u:p@a/,not a host",
    ],
)
def test_malformed_lists_are_a_config_error_without_the_password(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_broker_urls(text)
    message = str(caught.value)
    assert "%2C" in message
    for secret in ("se,cret", "se", "cret@"):
        assert f":{secret}" not in message


def test_mask_url_masks_every_node_and_malformed_ones() -> None:
    assert (
        mask_url("amqp://u:p1@a:5672/,amqp://v:p2@b/,c:5674")
        == "amqp://u:****@a:5672/,amqp://v:****@b/,c:5674"
    )
    assert mask_url("amqp://u:se,cret@a/") == "amqp://u:****@a/"
    assert mask_url("amqp://a:5672/,amqp://u:p@b/") == "amqp://a:5672/,amqp://u:****@b/"


def test_failover_order_starts_at_a_random_node_and_keeps_the_ring() -> None:
    nodes = tuple(URL(f"amqp://n{i}:5672/") for i in range(3))
    rng = random.Random(7)
    starts = Counter(failover_order(nodes, rng)[0].host for _ in range(600))
    assert set(starts) == {"n0", "n1", "n2"}
    assert min(starts.values()) > 150
    order = failover_order(nodes, rng)
    i = nodes.index(order[0])
    assert order == nodes[i:] + nodes[:i]


def test_transport_rejects_a_malformed_list_at_construction() -> None:
    with pytest.raises(ConfigError):
        AmqpTransport("amqp://u:p@a/,,b")


async def test_no_node_answering_names_every_node_without_passwords() -> None:
    transport = AmqpTransport(
        "amqp://user:hunter2@127.0.0.1:1/,127.0.0.1:2,127.0.0.1:3", op_timeout=2
    )
    with pytest.raises(BrokerUnavailableError) as caught:
        await transport.connect()
    message = str(caught.value)
    assert "hunter2" not in message
    assert all(f"127.0.0.1:{port}" in message for port in (1, 2, 3))
