"""Helpers the broker tests share (processes, waiting)."""
