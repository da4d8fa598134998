"""The monitor: the cluster's eyes (docs/design.md#services).

Consumes heartbeats, placements, results and the balancer's backlog; keeps
the live view; marks nodes down after missed heartbeats; raises alerts;
publishes ``ClusterSnapshot``; serves Prometheus metrics and a JSON backlog.
"""
