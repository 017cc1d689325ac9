"""The desk's three services: intake, evaluation, monitoring."""
