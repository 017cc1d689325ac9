"""The de minimis register (aid granted to each undertaking, entered by officers or imported from the
national state-aid register) and the funding computation capped by it."""
