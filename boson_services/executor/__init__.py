"""The executor: one per compute node (docs/design.md#services).

Runs the tasks assigned to its node with bounded concurrency, CPU-bound
handlers off the event loop, per-task timeouts and retries with backoff;
publishes a ``TaskResult`` for every task (a failed one after the last
retry); heartbeats its capacity and real load every second.
"""
