"""Demand, placement, balancing and simulation: pure numpy, no I/O."""
