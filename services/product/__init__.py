"""Product service: catalogue, SKUs, stock reservations and reviews."""
