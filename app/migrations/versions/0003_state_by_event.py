"""consent_state by event_seq: the verifier matches each state row to its event page by page.

Revision ID: 0003
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_consent_state_event_seq", "consent_state", ["event_seq"])


def downgrade() -> None:
    op.drop_index("ix_consent_state_event_seq", table_name="consent_state")
