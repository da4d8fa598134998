"""The task record: every task's lifecycle and outcome, durably, by id.

``schema`` (the tables), ``merge`` (how events fold into a task's row, pure),
``store`` (the async store over SQLAlchemy: ingest, read, expire),
``migrate`` (Alembic, run under a lock), ``location`` (the default file).
"""
