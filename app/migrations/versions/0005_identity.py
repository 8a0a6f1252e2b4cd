"""One person, many identifiers (ids, source, per-address confirmation, merges) and imports.

Revision ID: 0005
Revises: 0010
"""

from collections.abc import Sequence
import uuid

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0005"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subjects") as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.String(length=36), nullable=True))
    with op.batch_alter_table("consent_state") as batch_op:
        batch_op.add_column(
            sa.Column("consented_at", app.models.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("subject_identifiers") as batch_op:
        batch_op.add_column(sa.Column("id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("confirmed_at", app.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column("kind", type_=sa.String(length=32))
    connection = op.get_bind()
    identifiers = sa.table(
        "subject_identifiers",
        sa.column("hmac", sa.String),
        sa.column("id", sa.String),
        sa.column("kind", sa.String),
        sa.column("subject_id", sa.String),
        sa.column("created_at", app.models.UTCDateTime(timezone=True)),
        sa.column("confirmed_at", app.models.UTCDateTime(timezone=True)),
    )
    for (key,) in connection.execute(sa.select(identifiers.c.hmac)).all():
        connection.execute(
            identifiers.update().where(identifiers.c.hmac == key).values(id=str(uuid.uuid4()))
        )
    # Addresses whose email opt-in stands granted were confirmed before addresses had their
    # own confirmation: they keep being usable.
    state = sa.table(
        "consent_state",
        sa.column("subject_id", sa.String),
        sa.column("channel", sa.String),
        sa.column("category", sa.String),
        sa.column("purpose", sa.String),
        sa.column("status", sa.String),
    )
    granted = sa.select(state.c.subject_id).where(
        state.c.channel == "email",
        state.c.category == "",
        state.c.purpose == "",
        state.c.status == "granted",
    )
    connection.execute(
        identifiers.update()
        .where(identifiers.c.kind == "email", identifiers.c.subject_id.in_(granted))
        .values(confirmed_at=identifiers.c.created_at)
    )
    with op.batch_alter_table("subject_identifiers") as batch_op:
        batch_op.alter_column("id", existing_type=sa.String(length=36), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_subject_identifiers_id"), ["id"])

    op.create_table(
        "imports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("is_dry_run", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index("ix_imports_state", "imports", ["state", "created_at"])
    op.create_table(
        "import_chunks",
        sa.Column("import_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "number", name=op.f("pk_import_chunks")),
    )
    op.create_table(
        "import_errors",
        sa.Column("import_id", sa.String(length=36), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "line", name=op.f("pk_import_errors")),
    )


def downgrade() -> None:
    op.drop_table("import_errors")
    op.drop_table("import_chunks")
    op.drop_index("ix_imports_state", table_name="imports")
    op.drop_table("imports")
    with op.batch_alter_table("subject_identifiers") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_subject_identifiers_id"), type_="unique")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("source")
        batch_op.drop_column("id")
        batch_op.alter_column("kind", type_=sa.String(length=16))
    with op.batch_alter_table("consent_state") as batch_op:
        batch_op.drop_column("consented_at")
    with op.batch_alter_table("subjects") as batch_op:
        batch_op.drop_column("merged_into")
