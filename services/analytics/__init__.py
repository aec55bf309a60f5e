"""Analytics service: statistics over the events the other services publish."""
