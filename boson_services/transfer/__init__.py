"""The transfer service: the data plane's chunk store (DESIGN §1 "transfer")."""
