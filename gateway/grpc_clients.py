"""gRPC channels to the services, created lazily per worker, and calls with deadline and context metadata."""

from __future__ import annotations

import threading
from typing import Any

import grpc
from flask import g, request
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mall.analytics.v1 import analytics_pb2_grpc
from mall.user.v1 import user_pb2_grpc

from services.common.config import SERVICES
from services.common.discovery import Discovery
from services.common.grpc_server import AUTHORIZATION_KEY, REQUEST_ID_KEY


class ServiceClients:
    """One channel per service; channels are created on first use, after gunicorn has forked."""

    def __init__(self, discovery: Discovery, timeout_seconds: float) -> None:
        self.discovery = discovery
        self.timeout = timeout_seconds
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def channel(self, service: str) -> grpc.Channel:
        with self._lock:
            if service in self._channels:
                return self._channels[service]
        # May ask Consul: not while holding the lock. A lookup that began before forget_discovered()
        # can still store its (older) answer; the next UNAVAILABLE forgets it again.
        target = self.discovery.target(service)
        with self._lock:
            if service not in self._channels:
                self._channels[service] = grpc.insecure_channel(target)
            return self._channels[service]

    def call(self, method: Any, message: Any) -> Any:
        """Call a stub method, passing the request id and, once verified here, the caller's token along."""
        metadata = [(REQUEST_ID_KEY, g.request_id)]
        if g.get("caller") is not None:
            metadata.append((AUTHORIZATION_KEY, request.headers["Authorization"]))
        try:
            return method(message, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.forget_discovered()
            raise

    def forget_discovered(self) -> None:
        """Drop channels Consul chose, so the next call asks it again (the instance may be gone).

        Static targets are kept: gRPC reconnects to a DNS name by itself. Dropped channels are not
        closed, as calls of other requests may still be using them; they close when collected.
        """
        if self.discovery.consul is not None:
            with self._lock:
                self._channels.clear()

    @property
    def user(self) -> user_pb2_grpc.UserServiceStub:
        return user_pb2_grpc.UserServiceStub(self.channel("user"))

    @property
    def analytics(self) -> analytics_pb2_grpc.AnalyticsServiceStub:
        return analytics_pb2_grpc.AnalyticsServiceStub(self.channel("analytics"))

    def health(self, timeout_seconds: float = 1.0) -> dict[str, str]:
        """Each service's gRPC health status ("SERVING", "NOT_SERVING", "UNREACHABLE", ...)."""
        statuses = {}
        for service in SERVICES:
            try:
                reply = health_pb2_grpc.HealthStub(self.channel(service)).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=timeout_seconds)
                statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except (grpc.RpcError, LookupError):
                statuses[service] = "UNREACHABLE"
        return statuses

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
