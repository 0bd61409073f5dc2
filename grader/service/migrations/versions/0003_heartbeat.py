"""heartbeat: a running job's last sign of life

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:45:00

The watchdog used to wait for a job's whole time limit before taking back a job
whose process had died; a heartbeat tells it within seconds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("heartbeat_at")
