"""Evaluation's inbox: events from other services (intake's submissions, withdrawals and call amendments),
received once."""
