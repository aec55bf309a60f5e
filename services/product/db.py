"""Product service tables. Its domain tables arrive with its features; outbox and processed events are here now."""

from sqlalchemy import MetaData

metadata = MetaData()
