"""Partner-facing webhooks (subscriptions, secrets, deliveries, replays) and the event polling API."""
