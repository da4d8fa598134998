"""Unit tests of shared.scheduling: demand, placement, balancing."""
