"""Boson: what users touch — the ``boson`` command, the client SDK and the launcher.

``from boson import Client`` for the SDK; ``boson.embedded()`` runs every
service in-process on the embedded broker and yields a client.
"""
