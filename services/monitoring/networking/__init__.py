"""The networking results: outcomes of B2B meetings (intake events) in project results and statistics."""
