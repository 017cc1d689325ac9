"""Payment orders to the treasury (advance, balance), recovery orders after a revocation, and the treasury's
CSV export."""
