"""Import every service's tables so Alembic sees one metadata."""

import services.evaluation.models
import services.intake.models  # noqa: F401
