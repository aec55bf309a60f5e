"""Admin API (staff roles only): analytics for now."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from mall.analytics.v1 import analytics_pb2

from gateway.api import operation, query_args

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

DAY = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "UTC day, YYYY-MM-DD"}


@bp.get("/analytics/overview")
@operation(summary="Shop figures per UTC day over a period (default: the last 7 days)", tag="admin",
           roles=("admin", "operator"),
           query={"type": "object", "additionalProperties": False, "properties": {"from": DAY, "to": DAY}},
           responses={200: {"type": "object", "properties": {
               "from": DAY, "to": DAY, "new_users": {"type": "integer"},
               "days": {"type": "array", "items": {"type": "object", "properties": {
                   "date": DAY, "new_users": {"type": "integer"}}}}}}})
def analytics_overview() -> dict[str, Any]:
    args = query_args()
    clients = current_app.extensions["clients"]
    reply = clients.call(clients.analytics.GetOverview,
                         analytics_pb2.GetOverviewRequest(from_date=args.get("from", ""), to_date=args.get("to", "")))
    return {"from": reply.from_date, "to": reply.to_date, "new_users": reply.new_users,
            "days": [{"date": d.date, "new_users": d.new_users} for d in reply.days]}
