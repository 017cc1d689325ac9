"""Merit evaluation: conflict-of-interest declarations, reviewer assignments, scores against the call's grid,
the reviewers' consensus and the credit-scoring class. Writes `evaluation.conflict_declarations`,
`evaluation.review_assignments` and the merit columns of `evaluation.evaluations`."""
