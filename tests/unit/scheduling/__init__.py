"""Unit tests of boson_shared.scheduling: demand, placement, balancing."""
