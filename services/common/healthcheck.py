"""The images' HEALTHCHECK: `python -m services.common.healthcheck <service|gateway>` exits 0 when the container's
process answers over HTTP on its own port, 1 when it does not.

A service's long-running roles (serve, relay, consume) all answer /livez on <SVC>_METRICS_PORT, next to /metrics: 200
while their relay and consumer loops and serve-role jobs come round and a server's own gRPC server answers its
health check, 503 once one does not (services/common/liveness.py); the gateway answers /healthz on the port of
GATEWAY_BIND. Kubernetes ignores it and probes with its own (deploy/k8s); `docker run` and compose have only this.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from services.common.config import METRICS_PORTS, SERVICES, ConfigError, Env
from services.common.liveness import LIVENESS_PATH

TIMEOUT_SECONDS = 3.0  # more than a server's /livez waits for its own gRPC health (GRPC_SELF_CHECK_SECONDS)


def health_url(target: str, env: Env) -> str | None:
    """The local URL that answers while `target`'s process runs; None for a service whose metrics are off (port 0)."""
    if target == "gateway":  # gunicorn listens where GATEWAY_BIND says; every address when it names none
        host, _, port = env.str("GATEWAY_BIND", "127.0.0.1:8080").rpartition(":")
        host = host.strip("[]")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - read, not bound
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    port = env.int(f"{target.upper()}_METRICS_PORT", METRICS_PORTS[target])
    return f"http://127.0.0.1:{port}{LIVENESS_PATH}" if port else None


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in (*SERVICES, "gateway"):
        print(f"usage: python -m services.common.healthcheck {{{','.join((*SERVICES, 'gateway'))}}}", file=sys.stderr)
        return 2
    try:
        url = health_url(argv[0], Env())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if url is None:  # nothing to ask: the process exposes no port
        return 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310 - a fixed local http URL
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
