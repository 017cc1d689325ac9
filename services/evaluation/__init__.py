"""The evaluation service (its features arrive with their issues; it already has the desk's shape)."""
