"""The transfer service: the data plane's chunk store (docs/design.md#transfer)."""
