"""Tests of the trace loaders, the simulator and its metrics."""
