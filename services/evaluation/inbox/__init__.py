"""Evaluation's inbox: events from other services (intake's submissions and withdrawals), received once."""
