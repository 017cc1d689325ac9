"""Training that counts: attendance, a waiting list, certificates.

- `intake.trainings.min_attendance_share`: the share of the session's hours a participant must attend for a
  certificate (default 0.75).
- `intake.enrolments`: status `waiting` joins `enrolled` and `cancelled`; `queue_number` orders the waiting
  list by arrival; `promoted_at` records when a waiting enrolment took a freed place; `version` versions the
  enrolment (until now derived from the status: cancelled enrolments become 2). The live-address index
  covers waiting enrolments too, so one address cannot both wait and hold a place.
- `intake.attendances`: hours attended per enrolment (one row per participant and session).

Revision ID: 0022
Revises: 0017
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "trainings",
        sa.Column("min_attendance_share", sa.Numeric(3, 2), server_default=sa.text("0.75"), nullable=False),
        schema="intake",
    )
    op.create_check_constraint(
        op.f("ck_trainings_min_attendance_share"),
        "trainings",
        "min_attendance_share > 0 AND min_attendance_share <= 1",
        schema="intake",
    )
    op.add_column("enrolments", sa.Column("queue_number", sa.Integer(), nullable=True), schema="intake")
    op.add_column("enrolments", sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True), schema="intake")
    op.add_column(
        "enrolments", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False), schema="intake"
    )
    op.execute("UPDATE intake.enrolments SET version = 2 WHERE status = 'cancelled'")
    op.drop_index(
        "uq_enrolments_live", table_name="enrolments", schema="intake", postgresql_where=sa.text("status = 'enrolled'")
    )
    op.create_index(
        "uq_enrolments_live",
        "enrolments",
        ["training_id", "participant_email"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("status IN ('enrolled', 'waiting')"),
    )
    op.create_index(
        "ix_enrolments_waiting",
        "enrolments",
        ["training_id", "queue_number"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("queue_number IS NOT NULL"),
    )
    op.create_table(
        "attendances",
        sa.Column("enrolment_id", sa.UUID(), nullable=False),
        sa.Column("training_id", sa.UUID(), nullable=False),
        sa.Column("hours", sa.Numeric(6, 2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("hours >= 0", name=op.f("ck_attendances_hours_not_negative")),
        sa.ForeignKeyConstraint(
            ["enrolment_id"], ["intake.enrolments.id"], name=op.f("fk_attendances_enrolment_id_enrolments")
        ),
        sa.ForeignKeyConstraint(
            ["training_id"], ["intake.trainings.id"], name=op.f("fk_attendances_training_id_trainings")
        ),
        sa.PrimaryKeyConstraint("enrolment_id", name=op.f("pk_attendances")),
        schema="intake",
    )
    op.create_index(op.f("ix_attendances_training_id"), "attendances", ["training_id"], unique=False, schema="intake")


def downgrade() -> None:
    op.drop_index(op.f("ix_attendances_training_id"), table_name="attendances", schema="intake")
    op.drop_table("attendances", schema="intake")
    op.drop_index("ix_enrolments_waiting", table_name="enrolments", schema="intake")
    op.drop_index("uq_enrolments_live", table_name="enrolments", schema="intake")
    op.execute("UPDATE intake.enrolments SET status = 'cancelled' WHERE status = 'waiting'")
    op.create_index(
        "uq_enrolments_live",
        "enrolments",
        ["training_id", "participant_email"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("status = 'enrolled'"),
    )
    op.drop_column("enrolments", "version", schema="intake")
    op.drop_column("enrolments", "promoted_at", schema="intake")
    op.drop_column("enrolments", "queue_number", schema="intake")
    op.drop_constraint(op.f("ck_trainings_min_attendance_share"), "trainings", schema="intake")
    op.drop_column("trainings", "min_attendance_share", schema="intake")
