"""REST blueprints, one per area."""
