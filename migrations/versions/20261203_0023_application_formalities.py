"""The application's formalities: the legal representative, the stamp duty, the signed form.

`intake.companies.legal_representative_fiscal_code` is the fiscal code of the person who signs for the company;
`intake.applications` gains the stamp duty (marca da bollo) declared once per application (its 14-digit
identifier unique across applications), and `intake.application_forms` keeps, per submitted application, the
SHA-256 of the form the desk rendered (on its first read) and the legal representative's signed copy once
verified. Only the intake service writes them.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "companies", sa.Column("legal_representative_fiscal_code", sa.String(16), nullable=True), schema="intake"
    )
    op.add_column("applications", sa.Column("stamp_duty_id", sa.String(14), nullable=True), schema="intake")
    op.add_column("applications", sa.Column("stamp_duty_issued_on", sa.Date(), nullable=True), schema="intake")
    op.add_column(
        "applications", sa.Column("form_signed_at", sa.DateTime(timezone=True), nullable=True), schema="intake"
    )
    op.create_index("uq_applications_stamp_duty_id", "applications", ["stamp_duty_id"], unique=True, schema="intake")
    op.create_table(
        "application_forms",
        sa.Column(
            "application_id",
            sa.Uuid(),
            sa.ForeignKey(
                "intake.applications.id", ondelete="CASCADE", name="fk_application_forms_application_id_applications"
            ),
            primary_key=True,
        ),
        sa.Column("form_sha256", sa.String(64), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("signed_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("signed_sha256", sa.String(64), nullable=True),
        sa.Column("signer_fiscal_code", sa.String(16), nullable=True),
        sa.Column("signing_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_by", sa.String(64), nullable=True),
        schema="intake",
    )


def downgrade() -> None:
    op.drop_table("application_forms", schema="intake")
    op.drop_index("uq_applications_stamp_duty_id", table_name="applications", schema="intake")
    op.drop_column("applications", "form_signed_at", schema="intake")
    op.drop_column("applications", "stamp_duty_issued_on", schema="intake")
    op.drop_column("applications", "stamp_duty_id", schema="intake")
    op.drop_column("companies", "legal_representative_fiscal_code", schema="intake")
