"""Funded projects: started from accepted decisions, followed to their outcome (full, reduced, revoked)."""
