"""Typed gRPC clients for any service, shared by the gateway and by services that call services.

`ServiceClients.get(UserServiceStub)` returns the generated stub itself (so calls stay typed),
bound to a channel that:
- finds the service through discovery (Consul's passing instances, else the static address);
- spreads calls over every address the target resolves to (`round_robin`): with a static
  `dns:///user:50051` naming a headless Kubernetes Service, that is every ready pod, and gRPC
  re-resolves the name when a connection drops (servers end connections after a maximum age, so
  new pods are found too);
- gives every call the default deadline unless the caller set one;
- forwards the request id and the verified caller's token from the current context, so the
  callee's ContextInterceptor sees the same request and the same caller;
- or, for a stub from `get(..., as_service=True)`, sends this service's own token instead (calls
  only a service may make, such as stock reservations, and background jobs that have no caller);
- retries reads (methods named Get*, List*, Search*, Quote*, Check*) on UNAVAILABLE with gRPC's
  own retry policy; writes are never retried here (their idempotency is the service's business);
- forgets a Consul-chosen channel when a call finds its instance UNAVAILABLE.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import sessions
from services.common.auth import caller_var
from services.common.config import SERVICES
from services.common.discovery import Discovery
from services.common.errors import DomainError
from services.common.grpc_server import AUTHORIZATION_KEY, GRPC_STATUS, REQUEST_ID_KEY, from_grpc
from services.common.logs import request_id_var
from services.common.sessions import SessionsEnded

READ_PREFIXES = ("Get", "List", "Search", "Quote", "Check")
RETRY_ATTEMPTS = 3

StubT = TypeVar("StubT")


def service_of(stub_class: type) -> str:
    """The service a generated stub talks to: mall.user.v1.user_pb2_grpc.UserServiceStub -> "user"."""
    parts = stub_class.__module__.split(".")
    if len(parts) < 3 or parts[0] != "mall" or parts[1] not in SERVICES:
        raise ValueError(f"{stub_class.__module__}.{stub_class.__name__} is not a MiniMall service stub")
    return parts[1]


def read_methods(descriptor: ServiceDescriptor) -> list[str]:
    """The methods of a proto service that only read, by the naming convention above."""
    return [m.name for m in descriptor.methods if m.name.startswith(READ_PREFIXES)]


def service_config(descriptors: Sequence[ServiceDescriptor]) -> str:
    """A gRPC service config: round_robin over the target's addresses; reads of `descriptors` retried on UNAVAILABLE."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    names = [{"service": d.full_name, "method": m} for d in descriptors for m in read_methods(d)]
    if names:
        config["methodConfig"] = [{"name": names, "retryPolicy": {
            "maxAttempts": RETRY_ATTEMPTS, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]
    return json.dumps(config)


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class ContextClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Default deadline, request id and a token on every call; reports UNAVAILABLE instances, and hands the
    sessions an answer says it ended (services/common/sessions.py) to `on_sessions_ended` (the gateway's).

    The token is the current caller's, or with `service_token` always that one (never the caller's).
    """

    def __init__(self, timeout_seconds: float, on_unavailable: Callable[[], None] = lambda: None, *,
                 service_token: str | None = None,
                 on_sessions_ended: Callable[[SessionsEnded], None] | None = None) -> None:
        self.timeout = timeout_seconds
        self.on_unavailable = on_unavailable
        self._service_token = service_token
        self.on_sessions_ended = on_sessions_ended

    def __repr__(self) -> str:  # never show the token
        return f"ContextClientInterceptor(timeout={self.timeout}, as_service={self._service_token is not None})"

    def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any], client_call_details: Any,
                              request: Any) -> Any:
        metadata = list(client_call_details.metadata or ())
        keys = {key for key, _ in metadata}
        request_id = request_id_var.get()
        if request_id and REQUEST_ID_KEY not in keys:
            metadata.append((REQUEST_ID_KEY, request_id))
        caller = caller_var.get()
        token = self._service_token if self._service_token is not None else caller.token if caller else ""
        if token and AUTHORIZATION_KEY not in keys:
            metadata.append((AUTHORIZATION_KEY, f"Bearer {token}"))
        details = _Details(client_call_details.method,
                           self.timeout if client_call_details.timeout is None else client_call_details.timeout,
                           metadata, client_call_details.credentials, client_call_details.wait_for_ready,
                           client_call_details.compression)
        outcome = continuation(details, request)
        if isinstance(outcome, grpc.RpcError) and outcome.code() == grpc.StatusCode.UNAVAILABLE:
            self.on_unavailable()
        if self.on_sessions_ended is not None and isinstance(outcome, grpc.Future):
            outcome.add_done_callback(self._read_sessions_ended)  # at once for a finished call, as they all are
        return outcome

    def _read_sessions_ended(self, call: Any) -> None:
        assert self.on_sessions_ended is not None
        for notice in sessions.from_trailers(call.trailing_metadata()):
            self.on_sessions_ended(notice)


ChannelFactory = Callable[[str, str], grpc.Channel]  # (service, target) -> channel


def insecure_channel(service: str, target: str) -> grpc.Channel:
    descriptors = _descriptors_of(service)
    return grpc.insecure_channel(target, options=[("grpc.service_config", service_config(descriptors)),
                                                  ("grpc.service_config_disable_resolution", 1),  # ours, not DNS TXT's
                                                  ("grpc.enable_retries", 1)])


def _descriptors_of(service: str) -> list[ServiceDescriptor]:
    package = importlib.import_module(f"mall.{service}.v1")
    found = []
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.endswith("_pb2"):
            found.extend(importlib.import_module(f"{package.__name__}.{module.name}").DESCRIPTOR
                         .services_by_name.values())
    return found


class ServiceClients:
    """One channel per service, created on first use (after gunicorn has forked), shared by threads.

    `service_token` is this process's own service token (services/common/auth.py service_identity),
    sent by stubs from `get(..., as_service=True)`; the gateway has none.
    """

    def __init__(self, discovery: Discovery, timeout_seconds: float, *,
                 channel_factory: ChannelFactory = insecure_channel, service_token: str | None = None,
                 on_sessions_ended: Callable[[SessionsEnded], None] | None = None) -> None:
        self.discovery = discovery
        self.timeout = timeout_seconds
        self.channel_factory = channel_factory
        self._service_token = service_token
        # Where the sessions the services' answers say they ended go (the gateway's session marks); set before
        # the first call.
        self.on_sessions_ended = on_sessions_ended
        self._channels: dict[str, grpc.Channel] = {}
        # (the channel wrapped, the wrapper): the same connections, with our own token on every call
        self._service_channels: dict[str, tuple[grpc.Channel, grpc.Channel]] = {}
        self._stubs: dict[tuple[type, bool], tuple[grpc.Channel, Any]] = {}  # (stub class, as_service) -> (channel, stub)
        self._lock = threading.Lock()

    def get(self, stub_class: type[StubT], *, as_service: bool = False) -> StubT:
        """The generated stub `stub_class`, on the intercepted channel of its service.

        With `as_service` its calls carry this service's own token instead of the current caller's:
        for RPCs only a service may make, and for jobs that have no caller at all.
        """
        service = service_of(stub_class)
        channel = self.service_channel(service) if as_service else self.channel(service)
        # A stub is one multicallable per method of its service (26 for the user service's): built once
        # per channel, not per call.
        cached = self._stubs.get((stub_class, as_service))
        if cached is None or cached[0] is not channel:
            cached = self._stubs[(stub_class, as_service)] = (channel, stub_class(channel))  # type: ignore[call-arg]
        return cached[1]  # type: ignore[no-any-return]

    def channel(self, service: str) -> grpc.Channel:
        with self._lock:
            if service in self._channels:
                return self._channels[service]
        # May ask Consul: not while holding the lock. A lookup that began before forget_discovered()
        # can still store its (older) answer; the next UNAVAILABLE forgets it again.
        target = self.discovery.target(service)
        with self._lock:
            if service not in self._channels:
                interceptor = ContextClientInterceptor(self.timeout, self.forget_discovered,
                                                       on_sessions_ended=self.on_sessions_ended)
                self._channels[service] = grpc.intercept_channel(self.channel_factory(service, target), interceptor)
            return self._channels[service]

    def service_channel(self, service: str) -> grpc.Channel:
        """`channel(service)` with this service's own token on every call instead of the caller's."""
        if not self._service_token:
            raise RuntimeError("this process has no service token (SERVICE_TOKEN) to call as itself")
        shared = self.channel(service)
        with self._lock:
            wrapped = self._service_channels.get(service)
            if wrapped is None or wrapped[0] is not shared:  # new, or the shared channel was forgotten since
                # The shared channel's own interceptor still runs after this one: it keeps our token (it never
                # replaces an authorization already set) and reports UNAVAILABLE instances.
                interceptor = ContextClientInterceptor(self.timeout, service_token=self._service_token)
                wrapped = self._service_channels[service] = (shared, grpc.intercept_channel(shared, interceptor))
            return wrapped[1]

    def forget_discovered(self) -> None:
        """Drop channels Consul chose, so the next call asks it again (the instance may be gone).

        Static targets are kept: gRPC reconnects to a DNS name by itself. Dropped channels are not
        closed, as calls of other requests may still be using them; they close when collected.
        """
        if self.discovery.consul is not None:
            with self._lock:
                self._channels.clear()
                self._service_channels.clear()

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
            self._service_channels.clear()


KIND_OF_STATUS = {status: kind for kind, status in GRPC_STATUS.items()}


@contextmanager
def passed_on(service: str) -> Iterator[None]:
    """A neighbour's domain error (OUT_OF_STOCK, COUPON_EXPIRED, ...) becomes ours, same code and kind."""
    try:
        yield
    except grpc.RpcError as exc:
        status, code, message, details = from_grpc(exc)
        kind = KIND_OF_STATUS.get(status)
        if kind is None or not code:
            raise DomainError(f"{service.upper()}_UNAVAILABLE", f"the {service} service did not answer",
                              kind=KIND_OF_STATUS[grpc.StatusCode.UNAVAILABLE]) from None
        raise DomainError(code, message, kind=kind, details=details) from None
