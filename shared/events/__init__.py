"""Domain events: the catalogue, Standard Webhooks signing, and the outbox delivery worker."""
