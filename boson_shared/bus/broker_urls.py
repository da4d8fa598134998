"""A broker address that names several RabbitMQ nodes.

``BOSON_BROKER_URL`` is one URL or a comma-separated list of them, one per
node of a cluster::

    amqp://boson:secret@rabbit-0:5672/boson,amqp://boson:secret@rabbit-1:5672/boson

After the first, an entry may be just ``host`` or ``host:port``: it takes the
scheme, credentials, virtual host and query of the first entry::

    amqp://boson:secret@rabbit-0:5672/boson,rabbit-1:5672,rabbit-2:5672

The comma separates nodes, so a comma inside a user name or password is
written percent-encoded, as every reserved character of a URL is: ``,`` is
``%2C`` (``@`` is ``%40``, ``:`` is ``%3A``, ``/`` is ``%2F``, ``%`` is ``%25``).
``urllib.parse.quote(password, safe="")`` writes it. The decoded password is
what reaches the broker.
"""

from __future__ import annotations

import random
import re

from yarl import URL

from boson_shared.errors import ConfigError

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
_SCHEMES = tuple(_DEFAULT_PORTS)
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}))?$")


# "//user:" then the password up to the "@": a password cannot hold a raw
# "/" (it would end the authority), which keeps the match inside one entry.
_CREDENTIALS = re.compile(r"(//[^:/@,]*:)[^@/]*@")


def mask_url(url: str) -> str:
    """``url`` (one node or a list) with every password replaced by ``****``.

    Works on the text, not a parse, so that a malformed URL (an unescaped
    comma in its password, say) is masked too.
    """
    return _CREDENTIALS.sub(r"\1****@", url)


def parse_broker_urls(text: str) -> tuple[URL, ...]:
    """The nodes of ``text``, in the order given; ConfigError when malformed.

    Every error shows the whole list masked, never one entry alone: the
    pieces of a password with an unescaped comma would each escape the mask.
    """
    parts = [part.strip() for part in text.split(",")]
    if any(part == "" for part in parts):
        raise _malformed(text, "has an empty entry")
    first = _full_url(parts[0], text)
    nodes = [first]
    for part in parts[1:]:
        if "://" in part:
            nodes.append(_full_url(part, text))
            continue
        match = _HOST_PORT.match(part)
        if match is None:
            raise _malformed(text, "has an entry that is neither a URL nor host[:port]")
        port = int(match["port"]) if match["port"] else _port_of(first)
        if not 0 < port < 65536:
            raise _malformed(text, "has an invalid port")
        nodes.append(first.with_host(match["host"].strip("[]")).with_port(port))
    return tuple(nodes)


def _malformed(text: str, what: str) -> ConfigError:
    return ConfigError(
        f"broker URL {mask_url(text)!r} {what} (a list separates nodes with commas; "
        "a comma inside a password is written %2C)"
    )


def _full_url(part: str, text: str) -> URL:
    try:
        url = URL(part)
        port = url.port
    except (ValueError, TypeError):
        raise _malformed(text, "is malformed") from None
    if url.scheme not in _SCHEMES or not url.host:
        raise _malformed(text, "needs amqp://host… or amqps://host… entries")
    if port is not None and not 0 < port < 65536:
        raise _malformed(text, "has an invalid port")
    return url


def _port_of(url: URL) -> int:
    """The port ``url`` names, or AMQP's default for its scheme."""
    if url.port is not None:
        return url.port
    return _DEFAULT_PORTS[url.scheme]


def failover_order(nodes: tuple[URL, ...], rng: random.Random | None = None) -> tuple[URL, ...]:
    """``nodes`` rotated to start at a random one; the order after it is kept.

    Every process starting at a random node spreads connections over the
    cluster; failing over to the next in the list (not a random one) makes
    sure every node is tried once before any is tried twice.
    """
    start = (rng or random).randrange(len(nodes))
    return nodes[start:] + nodes[:start]


__all__ = ["failover_order", "mask_url", "parse_broker_urls"]
