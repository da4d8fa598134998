"""The monitor's web dashboard and its JSON API (the ``web`` extra).

Served by the monitor on its own port (``BOSON_DASHBOARD_PORT``), apart from
the health and metrics endpoint; it reads the monitor's live state in process.
:mod:`.present` (the cluster as JSON) has no web dependency: ``boson status``
uses it too.
"""
