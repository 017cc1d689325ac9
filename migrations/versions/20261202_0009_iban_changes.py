"""The beneficiary's account: the IBAN's holder on the project, and the changes of IBAN (applied at once, or
pending the company's or an officer's confirmation while a payment is ordered and not yet paid).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("iban_holder_name", sa.String(length=200), nullable=True), schema="monitoring")
    op.add_column(
        "projects", sa.Column("iban_holder_tax_code", sa.String(length=16), nullable=True), schema="monitoring"
    )
    op.create_table(
        "iban_changes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("holder_tax_code", sa.String(length=16), nullable=False),
        sa.Column("previous_iban", sa.String(length=34), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_by_kind", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["monitoring.projects.id"], name=op.f("fk_iban_changes_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iban_changes")),
        schema="monitoring",
    )
    op.create_index(
        "uq_iban_changes_one_pending",
        "iban_changes",
        ["project_id"],
        unique=True,
        schema="monitoring",
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_iban_changes_one_pending",
        table_name="iban_changes",
        schema="monitoring",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("iban_changes", schema="monitoring")
    op.drop_column("projects", "iban_holder_tax_code", schema="monitoring")
    op.drop_column("projects", "iban_holder_name", schema="monitoring")
