"""The suppression keys of each identifier beyond its own HMAC (its mailbox's, and under each
key of the ring), so one statement answers whether a subject is under suppression.

Filled as identifiers are made; `consent-center suppression-keys` fills those made before
(until then such an identifier is keyed in Python, as before).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identifier_variants",
        sa.Column("identifier_hmac", sa.String(length=64), nullable=False),
        sa.Column("ring", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["identifier_hmac"],
            ["subject_identifiers.hmac"],
            name=op.f("fk_identifier_variants_identifier_hmac_subject_identifiers"),
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "identifier_hmac", "ring", "key", name=op.f("pk_identifier_variants")
        ),
    )


def downgrade() -> None:
    op.drop_table("identifier_variants")
