"""Boson's shared library: the wire contract, the bus, the runtime and scheduling.

It never imports ``services`` or ``boson`` (docs/design.md#layout).
"""
