"""The five Boson services. Each imports ``shared`` only, never another service."""
