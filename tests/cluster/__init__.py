"""Boson on a three-node RabbitMQ cluster (the ``cluster`` marker)."""
