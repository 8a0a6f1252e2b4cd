"""Notice versions say whether the public pages may show them.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notice_versions") as table:
        table.add_column(
            sa.Column("is_shown", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("notice_versions") as table:
        table.drop_column("is_shown")
