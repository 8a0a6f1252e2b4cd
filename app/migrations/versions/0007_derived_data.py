"""Derived data: what was worked out about a person (the country from the IP), and how.

Revision ID: 0007
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "derived_data",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("capture_point", sa.String(length=200), nullable=True),
        sa.Column("derived_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_data")),
    )
    with op.batch_alter_table("derived_data", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_derived_data_subject_id"), ["subject_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("derived_data", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_derived_data_subject_id"))
    op.drop_table("derived_data")
