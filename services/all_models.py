"""Import every service's tables so Alembic sees one metadata."""

import services.evaluation.models
import services.intake.models
import services.monitoring.models  # noqa: F401
