"""The scheduler: admission and placement (docs/design.md#demand, #placement).

Estimates each submitted task's demand, places a batch of tasks in one call
against the newest cluster snapshot plus its own optimistic reservations, and
emits ``TaskPlaced`` (a node, or pending). A task that can never fit gets a
failed ``TaskResult`` at once. Usage reported in results refits the online
demand model.
"""
