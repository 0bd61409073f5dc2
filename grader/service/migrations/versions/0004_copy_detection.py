"""copy detection: weight fingerprint keys and the pairs found

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weight_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submissions.id"],
            name=op.f("fk_weight_keys_submission_id_submissions"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_weight_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weight_keys")),
    )  # fmt: skip
    op.create_index("ix_weight_keys_assignment_key", "weight_keys", ["assignment_id", "key"])
    op.create_index(
        op.f("ix_weight_keys_submission_id"), "weight_keys", ["submission_id"], unique=False
    )
    op.create_table(
        "copy_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("second_id", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("found_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_id"], ["submissions.id"], name=op.f("fk_copy_pairs_first_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["second_id"], ["submissions.id"], name=op.f("fk_copy_pairs_second_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_copy_pairs")),
        sa.UniqueConstraint("first_id", "second_id", name=op.f("uq_copy_pairs_first_id")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_copy_pairs_assignment_id"), "copy_pairs", ["assignment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("copy_pairs")
    op.drop_table("weight_keys")
