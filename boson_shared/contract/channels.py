"""Which message kinds travel on which route, who sends them and who takes them.

:mod:`boson_shared.contract.topology` names exchanges, queues and routing keys;
:mod:`boson_shared.contract.messages` defines the kinds. The channels join the
two: one :class:`~boson_shared.contract.channel_types.Channel` per route a
message takes, built from the same
:class:`~boson_shared.contract.topology.Names` and routing-key functions the
services use, so a renamed queue or key changes it too. The AsyncAPI document
(``boson spec asyncapi``) is generated from it.

This module is the catalogue: every route, in one order. What a channel is,
and the queues channels land in, are in
:mod:`~boson_shared.contract.channel_types`; the routes themselves by subject in
:mod:`~boson_shared.contract.task_channels` (a task's journey) and
:mod:`~boson_shared.contract.cluster_channels` (the cluster's state and the
task record).
"""

from __future__ import annotations

from boson_shared.contract.channel_types import Channel
from boson_shared.contract.cluster_channels import cluster_channels
from boson_shared.contract.task_channels import task_channels
from boson_shared.contract.topology import Names


def channels(names: Names) -> tuple[Channel, ...]:
    """Every route of ``names``' namespace, in the order a task travels."""
    return task_channels(names) + cluster_channels(names)


__all__ = ["channels"]
