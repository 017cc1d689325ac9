"""One event subject convention, and the ordering key of deliveries.

An event type is `<noun>.<verb>` and its subject is the object the noun names (`shared.events.catalogue.SUBJECTS`).
Until now some publishers named another aggregate: `decision.*` and `funding.*` the application, `payment.*` the
project, `training.*` the enrolment, `webhook.ping` the subscription as `subscription`. The events already
written are rewritten to the convention from their own data (every one of them carries its object's id).

Deliveries to a subscription were ordered per subject (`deliveries.aggregate_key` = type:id); once the subject is
the decision or the payment, that would no longer keep one application's events in order. `desk.outbox` gains
`ordering_key`, set by the publisher (the application's id for events about an application, otherwise the
subject's id), and each delivery's key becomes its event's. `intake.commit_submission` sets it on
`application.submitted`.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import sql as sql_files

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (event types, subject type now, the data field holding its id; subject type before, the field before)
_RENAMED = (
    ("decision.%", "decision", "decision_id", "application", "application_id"),
    ("funding.%", "funding", "application_id", "application", "application_id"),
    ("payment.%", "payment", "payment_id", "project", "project_id"),
    ("training.%", "training", "training_id", "enrolment", "enrolment_id"),
    ("webhook.%", "webhook", "subscription_id", "subscription", "subscription_id"),
)

# Events about an application: their ordering key is the application's id.
_BY_APPLICATION = (
    "application.%",
    "evaluation.%",
    "funding.%",
    "decision.%",
    "project.%",
    "claim.%",
    "payment.%",
)


def upgrade() -> None:
    op.add_column("outbox", sa.Column("ordering_key", sa.String(64), nullable=True), schema="desk")
    for pattern, subject, field, _, _ in _RENAMED:
        op.execute(
            sa.text(
                "UPDATE desk.outbox SET aggregate_type = :subject, aggregate_id = payload->>:field"
                " WHERE event_type LIKE :pattern AND payload ? :field"
            ).bindparams(subject=subject, field=field, pattern=pattern)
        )
    op.execute(
        sa.text(
            "UPDATE desk.outbox SET ordering_key = CASE WHEN split_part(event_type, '.', 1) = ANY (:nouns)"
            " AND payload ? 'application_id' THEN payload->>'application_id' ELSE aggregate_id END"
        ).bindparams(nouns=[p.removesuffix(".%") for p in _BY_APPLICATION])
    )
    op.alter_column("outbox", "ordering_key", nullable=False, schema="desk")
    op.execute(
        "UPDATE desk.deliveries d SET aggregate_key = o.ordering_key FROM desk.outbox o"
        " WHERE o.id = d.event_id AND d.aggregate_key <> o.ordering_key"
    )
    sql_files.execute("commit_submission")


def downgrade() -> None:
    for statement in sql_files.statements("commit_submission"):
        op.execute(
            statement.replace(
                "aggregate_id,\n                                 ordering_key,", "aggregate_id,\n"
            ).replace("p_application_id::text, v_partner_id", "v_partner_id")
        )
    for pattern, _, _, subject, field in _RENAMED:
        op.execute(
            sa.text(
                "UPDATE desk.outbox SET aggregate_type = :subject, aggregate_id = payload->>:field"
                " WHERE event_type LIKE :pattern AND payload ? :field"
            ).bindparams(subject=subject, field=field, pattern=pattern)
        )
    op.execute(
        "UPDATE desk.deliveries d SET aggregate_key = o.aggregate_type || ':' || o.aggregate_id FROM desk.outbox o"
        " WHERE o.id = d.event_id"
    )
    op.drop_column("outbox", "ordering_key", schema="desk")
