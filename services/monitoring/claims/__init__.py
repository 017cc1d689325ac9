"""Expense claims (rendicontazione): lines, evidence, automatic checks and the officer's review."""
