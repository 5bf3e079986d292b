"""Alembic environment: runs on the connection armscan hands over, or on ``sqlalchemy.url``.

New revisions: ``alembic -c /dev/null -x url=... revision`` is not needed; write them by hand
under ``versions/`` (see 0001_initial.py) and they run at the service's start or by
``armscan db upgrade``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from armscan.serve.service.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


conn = config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as c:
        _run(c)
