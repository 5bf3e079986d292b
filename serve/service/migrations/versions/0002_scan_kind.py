"""Seizure photos beside X-ray scans: ``scans.kind`` ('xray' or 'photo').

Existing rows are X-ray scans (the server default). A photo's PhotoResult is stored in ``result_json``,
as a scan's ScanResult is, so no other column is needed. The audit log and its triggers are not touched.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE ... ADD COLUMN on both SQLite and PostgreSQL (no table copy: feedback keeps its
    # foreign key to scans, and the rows stay where they are).
    op.add_column("scans", sa.Column("kind", sa.String(16), nullable=False, server_default="xray"))
    op.create_index("ix_scans_kind", "scans", ["kind"])


def downgrade() -> None:
    photos = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM scans WHERE kind = 'photo'")).scalar_one()
    if photos:
        raise RuntimeError(
            f"refusing to downgrade: {photos} seizure photos are stored, and revision 0001 would read "
            "them as X-ray scans; export and delete them first"
        )
    op.drop_index("ix_scans_kind", table_name="scans")
    # SQLite (3.35 or newer) drops a column in place; Alembic's batch mode would copy the table instead.
    op.execute(sa.text("ALTER TABLE scans DROP COLUMN kind"))
