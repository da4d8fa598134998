"""The ``boson`` sub-commands, one module each."""
