"""tries counter and stored inspection

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 13:00:00

The retry limit used to be read from the job log's wording; it is now a column,
reset by an upload or a regrade. ``attempts`` (which the pages also used for a
student's attempts) is renamed ``tries_total``. ``inspection`` keeps what static
inspection found, so the evaluate job does not inspect the file again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column("attempts", new_column_name="tries_total")
        batch.add_column(sa.Column("tries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("inspection", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("inspection")
        batch.drop_column("tries")
        batch.alter_column("tries_total", new_column_name="attempts")
