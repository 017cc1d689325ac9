"""Automatic admissibility of a received application, officers' reviews of what needs one, and the
evaluation as partners and officers read it (`/v1/evaluations`)."""
