"""aio-pika's robust connection over several RabbitMQ nodes.

:class:`FailoverConnection` is :class:`aio_pika.RobustConnection` with a list
of nodes. aio-pika calls ``_on_connection_close`` both when an established
connection drops and when a connection attempt fails; there the connection
moves its URL to the next node, so the robust reconnect loop (one background
task, ``reconnect_interval`` between attempts) walks the list round and round
until a node answers, then restores its channels and consumers there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika
from yarl import URL

log = logging.getLogger(__name__)


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection that fails over along ``nodes``, starting at the first.

    The query parameters of the first node (``heartbeat``, TLS files…) apply
    to every node.
    """

    def __init__(self, nodes: tuple[URL, ...], **kwargs: Any) -> None:
        if not nodes:
            raise ValueError("a connection needs at least one node")
        super().__init__(nodes[0], **kwargs)
        self._nodes = nodes
        self._at = 0

    @property
    def node(self) -> URL:
        """The node the connection is on, or tries next."""
        return self._nodes[self._at]

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if not self._close_called and not self.is_closed and len(self._nodes) > 1:
            self._at = (self._at + 1) % len(self._nodes)
            self.url = self._nodes[self._at]
            log.info("connection lost or refused; the next attempt goes to %s", self)
        await super()._on_connection_close(closing)


__all__ = ["FailoverConnection"]
